"""What the notebooks in ``notebooks/`` share: where the data is, the
command lines they run, smoke mode, and the committed results they show.
Repository glue, not part of the ``ppresvar`` package: it runs the checkout's
``tools/`` and reads its ``results/``.

Every training run goes through ``tools/train.py`` in a subprocess; test-set
figures come from the function ``tools/eval.py`` calls, run in the notebook's
process. Each command is printed first, so a reader can type it in a terminal
instead. With ``PPRESVAR_SMOKE=1`` each notebook trains on a tiny generated
CIFAR-format archive for two iterations (CI runs them so); without it, the
configs run as published.

A finished run is not trained again (its ``metrics.jsonl`` reaches the
configured epoch count); an interrupted one resumes from its last checkpoint.
So on AI Studio, where ``work/`` survives a restart, re-running a notebook
picks up where it stopped.
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import yaml

__all__ = ["smoke", "ROOT", "find_cifar", "output_dir", "data_overrides", "train", "evaluate",
           "markdown_table", "show", "show_experiment"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smoke():
    """True when ``PPRESVAR_SMOKE`` is set (to anything but 0/false/no)."""
    return os.environ.get("PPRESVAR_SMOKE", "").strip().lower() not in ("", "0", "false", "no")


# Smoke size: 8 training images (4 held out for validation), 4 test images,
# two epochs of one iteration at batch 4.
SMOKE_TRAIN, SMOKE_VAL, SMOKE_TEST, SMOKE_BATCH, SMOKE_EPOCHS = 8, 4, 4, 4, 2


def _archive_name(hundred):
    return "cifar-100-python.tar.gz" if hundred else "cifar-10-python.tar.gz"


def find_cifar(hundred=False):
    """Path of the CIFAR-10 (or ``hundred``: CIFAR-100) python archive.

    Looks at ``CIFAR10_ARCHIVE`` / ``CIFAR100_ARCHIVE``, then AI Studio's
    mounts (``data/dataNNNNN/`` next to the notebook, in a parent folder or in
    the home folder) and paddle's download cache. In smoke mode it writes a
    tiny archive of the same format in the working folder instead. ``None``
    when there is none: the configs' ``data_file: null`` then lets the
    trainer download it.
    """
    name = _archive_name(hundred)
    if smoke():
        from ppresvar.data import write_cifar_archive

        path = os.path.abspath(os.path.join("smoke_data", name))
        if not os.path.isfile(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_cifar_archive(path, num_train=SMOKE_TRAIN, num_test=SMOKE_TEST, hundred=hundred)
        return path
    env = "CIFAR100_ARCHIVE" if hundred else "CIFAR10_ARCHIVE"
    if os.environ.get(env):
        path = os.path.abspath(os.path.expanduser(os.environ[env]))
        if not os.path.isfile(path):
            raise FileNotFoundError("%s=%s: no such file" % (env, path))
        return path
    folders, here = [], os.path.abspath(os.getcwd())
    while True:
        folders.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    folders += [os.path.expanduser("~"), ROOT]
    patterns = [os.path.join(f, "data", "data*", name) for f in folders]
    patterns += [os.path.join(f, "data", name) for f in folders]
    patterns.append(os.path.expanduser(os.path.join("~", ".cache", "paddle", "dataset", "cifar", name)))
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    print("%s not found here (set %s=/path/to/%s, or on AI Studio add the CIFAR data set to the "
          "project): tools/train.py will download it into paddle's cache" % (name, env, name))
    return None


def output_dir():
    """Where runs are written: ``PPRESVAR_OUTPUT``, else ``output/`` in the
    repository (``work/`` survives restarts on AI Studio); in smoke mode
    ``smoke_output/`` in the working folder."""
    if os.environ.get("PPRESVAR_OUTPUT"):
        return os.path.abspath(os.environ["PPRESVAR_OUTPUT"])
    return os.path.abspath("smoke_output") if smoke() else os.path.join(ROOT, "output")


def _config_path(config):
    return config if os.path.isabs(config) else os.path.join(ROOT, config)


def _read_config(config):
    """The config file as written, its ``_base_`` files merged in (not validated)."""
    from ppresvar.engine.config import read_yaml

    return read_yaml(_config_path(config))


def data_overrides(config, archive):
    """``-o`` overrides that point every CIFAR loader of ``config`` at
    ``archive`` (none when it is None); in smoke mode also the ones that
    shrink the run (epochs, batch sizes, validation split, warm-up, workers)."""
    cfg = _read_config(config)
    loaders = cfg.get("DataLoader") or {}
    out = []
    for split in ("Train", "Eval", "Test"):
        section = loaders.get(split)
        if not section:
            continue
        ds = section.get("dataset") or {}
        key = "DataLoader.%s" % split
        if archive and ds.get("name") in ("Cifar10", "Cifar100"):
            out.append("%s.dataset.data_file=%s" % (key, archive))
        if smoke():
            if ds.get("subset") in ("train", "val"):
                out.append("%s.dataset.val_size=%d" % (key, SMOKE_VAL))
            out += ["%s.batch_size=%d" % (key, SMOKE_BATCH), "%s.num_workers=0" % key]
    if smoke():
        lr = ((cfg.get("Optimizer") or {}).get("lr") or {})
        # one process (also the default; said, in case a config asks for data parallel)
        out += ["Global.epochs=%d" % SMOKE_EPOCHS, "Global.iterations=null", "Global.print_batch_step=1",
                "Global.cpu_processes=1"]
        out += ["Optimizer.lr.%s=0" % k for k in sorted(lr) if k.startswith("warmup") and k != "warmup_start_lr"]
        out += ["Global.use_visualdl=false", "Global.plot_curves=false"]
    return out


def _command(tool, args):
    return [sys.executable, os.path.join("tools", tool)] + list(args)


def _show_command(cmd):
    shown = ["python"] + cmd[1:]
    text = " ".join(shlex.quote(c) for c in shown)
    print("$ " + re.sub(r" (-o|-c|--resume) ", r" \\\n    \1 ", text))


def _run(cmd):
    """Run ``cmd`` in the repository root, echo its output as it comes;
    returns the output. A failure raises with the output's last lines."""
    _show_command(cmd)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, bufsize=1)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            print(line, end="")
        proc.wait()
    except BaseException:  # the kernel was interrupted: stop the run too (its checkpoints stay)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError("%s exited with code %d:\n%s" % (" ".join(cmd[1:3]), proc.returncode,
                                                             "".join(lines[-20:])))
    return "".join(lines)


def _finished(run_dir):
    """True when the run's metrics reach the epoch count it was configured for."""
    metrics = os.path.join(run_dir, "metrics.jsonl")
    cfg_path = os.path.join(run_dir, "config.yaml")
    if not (os.path.isfile(metrics) and os.path.isfile(cfg_path)):
        return False
    with open(cfg_path, encoding="utf-8") as f:
        epochs = ((yaml.safe_load(f) or {}).get("Global") or {}).get("epochs")
    with open(metrics, encoding="utf-8") as f:
        done = [json.loads(line)["epoch"] for line in f if line.strip()]
    return bool(done) and epochs is not None and done[-1] >= epochs


def train(config, overrides=(), run_name=None, out=None):
    """Train ``config`` (a path relative to the repository) with
    ``tools/train.py`` and the ``-o`` ``overrides``; returns the run
    directory. A finished run of the same name is kept as it is; an
    unfinished one resumes from its last checkpoint."""
    out = out or output_dir()
    run_name = run_name or os.path.splitext(os.path.basename(config))[0]
    run_dir = os.path.join(out, run_name)
    if _finished(run_dir):
        print("%s is finished: kept (delete it to train again)" % run_dir)
        return run_dir
    last = os.path.join(run_dir, "checkpoints", "last.pdckpt")
    args = ["-c", config] + [a for o in overrides for a in ("-o", o)]
    if os.path.isfile(last):
        args += ["--resume", run_dir]
    else:
        if os.path.isdir(run_dir):  # started, but no epoch finished: nothing worth keeping
            shutil.rmtree(run_dir)
        args += ["-o", "Global.output_dir=%s" % out, "-o", "Global.run_name=%s" % run_name]
    text = _run(_command("train.py", args))
    found = re.findall(r"run directory (\S+)", text)
    return found[-1] if found else run_dir


def evaluate(config, run_dir, overrides=(), checkpoint="best"):
    """Test-split figures of a run's ``best`` (by validation accuracy) or
    ``last`` checkpoint: a dict with top1, top5, loss, samples, epoch.

    Runs in this process through the function ``tools/eval.py`` calls
    (``ppresvar.engine.evaluator.evaluate_config``), after printing the
    equivalent command."""
    from ppresvar.engine.config import load_config
    from ppresvar.engine.evaluator import evaluate_config

    weights = os.path.join(run_dir, "checkpoints", "%s.pdckpt" % checkpoint)
    overrides = list(overrides) + ["Global.pretrained_model=%s" % weights]
    _show_command(_command("eval.py", ["-c", config] + [a for o in overrides for a in ("-o", o)]))
    result = evaluate_config(load_config(_config_path(config), overrides), "test")
    print("test split: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, weights of epoch %s)"
          % (100 * result["top1"], 100 * result["top5"], result["loss"], result["samples"], result.get("epoch")))
    return result


def markdown_table(header, rows):
    """A markdown table; numbers right-aligned."""
    def cell(v):
        if isinstance(v, float):
            return "%.4f" % v
        if isinstance(v, int) and not isinstance(v, bool):
            return format(v, ",")
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def show(markdown):
    """Render markdown in a notebook; print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(markdown))
            return
    except ImportError:
        pass
    print(markdown)


def show_experiment(experiment, curves=True):
    """Show an experiment of the reproduction ledger from the committed
    results: the table with budgets and commands, then each run's curves.
    Needs no training and no data."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from reproduction import ledger

    manifest = ledger.load_manifest(ledger.MANIFEST)
    results_dir = os.path.join(ROOT, "results")
    show(ledger.experiment_markdown(manifest, results_dir, experiment, heading="###"))
    if not curves:
        return
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        inline = get_ipython() is not None
    except ImportError:
        inline = False
    for row in ledger.collect_rows(manifest, results_dir, experiment):
        for r in row["runs"]:
            path = os.path.join(r["dir"], "curves.png")
            show("**%s, seed %d** (%s)" % (row["spec"]["label"], r["seed"],
                                           os.path.relpath(path, ROOT).replace(os.sep, "/")))
            if inline:
                display(Image(filename=path))
