"""The reproduction ledger's runs: read ``results/experiments.yaml``, train a
row's seeds (resumable), evaluate them on the test split and keep the small
files of each finished run in ``results/<experiment>/<row>/seed<S>/``:

    config.yaml     the resolved config (ppresvar) or the PyTorch arguments
    metrics.jsonl   one JSON line per epoch
    test.json       the test split on the last epoch's weights (ppresvar: also the best epoch's)
    curves.png      loss and accuracy per epoch
    run.json        commit, machine, framework, command, budget, training time
    model.safetensors   the last weights under ppresvar's names (one run per row: the first
                    one kept; float16 when that leaves the test figure, see
                    :func:`write_weights`), which ``tools/eval.py`` evaluates (:func:`eval_argv`)

Checkpoints stay in the run directory (``--runs-dir``, outside the work tree);
the kept files name the runs folder and the data archive as ``<runs dir>`` and
``<cifar archive>``, not as this machine's paths.
``reproduction/reproduce.py`` is the command line; ``reproduction/ledger.py``
writes the ledger from what this module keeps. Repository tooling, not part of
the ``ppresvar`` package: it reads and writes the checkout's ``results/``.
"""
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys

import numpy as np
import yaml

from ppresvar.errors import ConfigError, DataError

__all__ = ["load_manifest", "ROOT", "MANIFEST", "run_dir_of", "result_dir_of", "plan", "collect",
           "machine", "git_commit"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "results", "experiments.yaml")
EXPERIMENT_KEYS = {"title", "seed", "metric", "about", "rows", "claims", "gap", "per_epoch", "pairs"}
ROW_KEYS = {"label", "config", "overrides", "torch", "seeds", "budget", "paper", "seed_figure", "estimate",
            "same_as", "eval"}
WEIGHTS = "model.safetensors"
METRICS = ("test_top1", "test_error")


def _check_keys(node, known, where):
    if not isinstance(node, dict):
        raise ConfigError("%s must be a mapping" % where)
    unknown = set(node) - known
    if unknown:
        raise ConfigError("%s has unknown keys %s (known: %s)" % (where, sorted(unknown), sorted(known)))


def load_manifest(path=MANIFEST):
    """The experiments, validated: every key known, every row with a label,
    a budget, seeds and exactly one of ``config`` and ``torch``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError("cannot read the experiments file %s: %s" % (path, " ".join(str(e).split())))
    if not isinstance(data, dict) or not data:
        raise ConfigError("%s must map experiment names to experiments" % path)
    for name, exp in data.items():
        where = "%s: experiment %s" % (path, name)
        _check_keys(exp, EXPERIMENT_KEYS, where)
        if exp.get("metric") not in METRICS:
            raise ConfigError("%s: metric must be one of %s" % (where, ", ".join(METRICS)))
        if not isinstance(exp.get("rows"), dict) or not exp["rows"]:
            raise ConfigError("%s has no rows" % where)
        for rname, row in exp["rows"].items():
            rwhere = "%s, row %s" % (where, rname)
            _check_keys(row, ROW_KEYS, rwhere)
            if ("config" in row) == ("torch" in row):
                raise ConfigError("%s needs exactly one of config (ppresvar) and torch (PyTorch reference)" % rwhere)
            if "torch" in row and not row.get("same_as") and not (isinstance(row.get("eval"), dict)
                                                                   and row["eval"].get("config")):
                raise ConfigError("%s: a PyTorch row needs eval: {config: ..., overrides: [...]}, the ppresvar config "
                                  "that evaluates its weights" % rwhere)
            for key in ("label", "budget", "seeds"):
                if not row.get(key):
                    raise ConfigError("%s has no %s" % (rwhere, key))
            if not all(isinstance(s, int) for s in row["seeds"]):
                raise ConfigError("%s: seeds must be a list of integers" % rwhere)
            for key in ("paper", "seed_figure"):
                fig = row.get(key)
                if fig is not None and not (isinstance(fig, dict) and isinstance(fig.get("value"), (int, float))
                                            and fig.get("source")):
                    raise ConfigError("%s: %s must be {value: number, source: text}" % (rwhere, key))
            row.setdefault("overrides", [])
        named = [(c or {}).get(k) for c in exp.get("claims") or [] for k in ("above", "below")]
        for pair in exp.get("pairs") or []:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ConfigError("%s: pairs must be a list of [row, row]" % where)
            named += pair
        unknown = [n for n in named if n not in exp["rows"]]
        if unknown:
            raise ConfigError("%s: claims or pairs name no row of it: %s" % (where, ", ".join(map(str, unknown))))
    for name, exp in data.items():
        for rname, row in exp["rows"].items():
            other = row.get("same_as")
            if other is None:
                continue
            oexp, _, orow = str(other).partition("/")
            target = data.get(oexp, {}).get("rows", {}).get(orow)
            if target is None or "same_as" in target:
                raise ConfigError("%s: experiment %s, row %s: same_as %r names no row that trains (give "
                                  "experiment/row)" % (path, name, rname, other))
            if (target.get("config"), target.get("overrides"), target.get("torch")) != (
                    row.get("config"), row.get("overrides"), row.get("torch")):
                raise ConfigError("%s: experiment %s, row %s is same_as %s but trains something else: "
                                  "give both the same config and overrides" % (path, name, rname, other))
    return data


def run_dir_of(runs_dir, experiment, row, seed):
    return os.path.join(runs_dir, experiment, "%s-seed%d" % (row, seed))


def result_dir_of(results_dir, experiment, row, seed):
    return os.path.join(results_dir, experiment, row, "seed%d" % seed)


# what the runner itself writes: kept results and the ledger are not code a run depends on
_OUTPUTS = [":(exclude)results", ":(exclude)docs/reproductions.md"]


def git_commit():
    """``(commit, dirty)`` of the work tree, or ``(None, None)`` outside git;
    dirty: tracked files changed, but for the runner's own outputs (results/,
    the ledger)."""
    try:
        commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, stderr=subprocess.DEVNULL,
                                         text=True).strip()
        status = subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
                                         + _OUTPUTS, cwd=ROOT, stderr=subprocess.DEVNULL, text=True)
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None


def machine():
    """What the run ran on: CPU model, cores, OS, Python. ``cpu_id`` (x86
    family and model numbers, and the widest vector extension) tells apart
    CPUs that a cloud names alike ("AMD EPYC" has been a Zen 3, a Zen 4 and
    a Zen 5 here, which train at different speeds)."""
    model = platform.processor() or ""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break                                   # the first processor is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    model = info.get("model name", model)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    out = {"cpu": model, "cores": cores, "os": platform.platform(), "python": platform.python_version()}
    if "cpu family" in info and "model" in info:
        flags = info.get("flags", "").split()
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
        out["cpu_id"] = "family %s model %s%s" % (info["cpu family"], info["model"], ", " + isa if isa else "")
    return out


def cpu_label(machine_record, missing="an unrecorded CPU"):
    """A run's CPU as the ledger names it: the model name, with ``cpu_id`` when
    recorded; ``missing`` when the record has no model name."""
    m = machine_record or {}
    cpu = m.get("cpu") or missing
    return "%s (%s)" % (cpu, m["cpu_id"]) if m.get("cpu_id") else cpu


def _train_argv(row, seed, run_dir, data_file):
    head, name = os.path.split(run_dir)
    argv = [os.path.join("tools", "train.py"), "-c", row["config"]]
    for o in list(row["overrides"]) + ["Global.seed=%d" % seed, "Global.output_dir=%s" % head,
                                       "Global.run_name=%s" % name, "Global.use_visualdl=false"]:
        argv += ["-o", o]
    if data_file:
        argv += ["-o", "DataLoader.*.dataset.data_file=%s" % data_file]
    return argv


def _torch_argv(row, seed, run_dir, data_file):
    if not data_file:
        raise ConfigError("a PyTorch row needs the CIFAR archive: pass --data PATH")
    return ([os.path.join("reference", "torch_reference.py"), "--train"] + [str(a) for a in row["torch"]]
            + ["--seed", str(seed), "--data", data_file, "--out", run_dir])


def _finished(run_dir, row):
    """A PyTorch run writes test.json at its end; a ppresvar run has as many
    lines in metrics.jsonl as its resolved config has epochs."""
    if "torch" in row:
        return os.path.isfile(os.path.join(run_dir, "test.json"))
    cfg_path, metrics_path = os.path.join(run_dir, "config.yaml"), os.path.join(run_dir, "metrics.jsonl")
    if not (os.path.isfile(cfg_path) and os.path.isfile(metrics_path)):
        return False
    with open(cfg_path, encoding="utf-8") as f:
        epochs = (yaml.safe_load(f) or {}).get("Global", {}).get("epochs")
    metrics = _read_jsonl(metrics_path)
    return bool(metrics) and epochs is not None and metrics[-1]["epoch"] >= epochs


def plan(manifest, experiment, rows, runs_dir, results_dir, data_file=None, seeds=None):
    """What to do for each (row, seed): ``done`` (in results/), ``collect``
    (trained, not yet kept), ``resume`` or ``train``, with the command."""
    if experiment not in manifest:
        raise ConfigError("unknown experiment %r: choose from %s" % (experiment, ", ".join(manifest)))
    exp = manifest[experiment]
    rows = rows or list(exp["rows"])
    for r in rows:
        if r not in exp["rows"]:
            raise ConfigError("experiment %s has no row %r: choose from %s" % (experiment, r, ", ".join(exp["rows"])))
    steps = []
    for r in rows:
        row = exp["rows"][r]
        for seed in (seeds if seeds is not None else row["seeds"]):
            run_dir = run_dir_of(runs_dir, experiment, r, seed)
            result_dir = result_dir_of(results_dir, experiment, r, seed)
            step = {"experiment": experiment, "row": r, "seed": seed, "run_dir": run_dir, "result_dir": result_dir,
                    "framework": "torch" if "torch" in row else "ppresvar", "spec": row}
            if row.get("same_as"):
                step["action"] = "shared with %s" % row["same_as"]
            elif os.path.isfile(os.path.join(result_dir, "run.json")):
                step["action"] = "done"
            elif _finished(run_dir, row):
                step["action"] = "collect"
            elif "torch" in row:
                step["action"] = "resume" if os.path.isfile(os.path.join(run_dir, "last.pt")) else "train"
                step["argv"] = _torch_argv(row, seed, run_dir, data_file)
            elif os.path.isfile(os.path.join(run_dir, "checkpoints", "last.pdckpt")):
                step["action"] = "resume"
                step["argv"] = [os.path.join("tools", "train.py"), "--resume", run_dir]
            else:
                step["action"] = "train"
                step["argv"] = _train_argv(row, seed, run_dir, data_file)
            steps.append(step)
    return steps


def provenance_path(run_dir):
    """Beside the run directory, not in it: tools/train.py starts a new run
    only in an empty folder."""
    return os.path.normpath(run_dir) + ".provenance.json"


def uncommitted_diff():
    """``git diff HEAD`` of the work tree (tracked files): what a run started
    from a dirty tree ran besides its commit."""
    try:
        return subprocess.check_output(["git", "diff", "HEAD", "--binary", "--", "."] + _OUTPUTS, cwd=ROOT,
                                       stderr=subprocess.DEVNULL, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""


def write_provenance(run_dir, step, python, allow_dirty=False):
    """``<run dir>.provenance.json`` at the run's first start: the commit, the
    machine and the command that started it. A tree with uncommitted changes
    is refused (a kept result must say what code made it), unless
    ``allow_dirty``: then the changes are kept beside it as
    ``<run dir>.provenance.diff`` and, with the result, ``uncommitted.diff``."""
    path = provenance_path(run_dir)
    if os.path.exists(path):
        return
    commit, dirty = git_commit()
    if dirty and not allow_dirty:
        raise ConfigError("the work tree has uncommitted changes: commit them (or run from a clean git worktree) so "
                          "that the run's commit says what trained it, or pass --allow-dirty to keep the diff with it")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if dirty:
        with open(os.path.normpath(run_dir) + ".provenance.diff", "w") as f:
            f.write(uncommitted_diff())
    with open(path, "w") as f:
        json.dump({"commit": commit, "dirty": dirty, "machine": machine(),
                   "started": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "command": " ".join(["python"] + step["argv"]), "python": python}, f, indent=1)


def run_step(step, python, torch_python=None, log=print, allow_dirty=False):
    """Train (or resume) one (row, seed); returns the exit code."""
    exe = torch_python if step["framework"] == "torch" else python
    if step["framework"] == "torch" and not torch_python:
        raise ConfigError("row %s runs PyTorch: pass --torch-python PY (a venv with torch==2.13.0)" % step["row"])
    write_provenance(step["run_dir"], step, exe, allow_dirty)
    log("%s %s/%s seed %d: %s" % (step["action"], step["experiment"], step["row"], step["seed"],
                                  " ".join(["python"] + step["argv"])))
    return subprocess.call([exe] + step["argv"], cwd=ROOT)


def _eval(python, checkpoint, argv=None):
    """tools/eval.py on ``checkpoint`` (its own config), or with ``argv``."""
    argv = argv or [os.path.join("tools", "eval.py"), "-o", "Global.pretrained_model=%s" % checkpoint]
    out = subprocess.run([python] + argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise DataError("evaluating %s failed: %s" % (checkpoint, (out.stderr.strip().splitlines() or ["?"])[-1]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def eval_argv(row, result_dir, data_file, config=None):
    """The ``tools/eval.py`` command (argv, run from the repository) that
    evaluates a kept run's ``model.safetensors`` in ``result_dir`` (as
    written: ``results/<experiment>/<row>/seed<S>`` for the ledger) on the
    test split: with the run's kept ``config.yaml`` (ppresvar), or with the
    row's ``eval`` config (a PyTorch row: the ppresvar config of the same
    model and preprocessing). ``config`` overrides the kept config's path."""
    rel = result_dir.replace(os.sep, "/")
    if "torch" in row:
        argv = ["-c", row["eval"]["config"]]
        for o in row["eval"].get("overrides", []):
            argv += ["-o", str(o)]
    else:
        argv = ["-c", config or rel + "/config.yaml"]
    return ([os.path.join("tools", "eval.py").replace(os.sep, "/")] + argv
            + ["-o", "Global.pretrained_model=%s/%s" % (rel, WEIGHTS),
               "-o", "DataLoader.*.dataset.data_file=%s" % data_file])


def row_weights(results_dir, experiment, row):
    """The seeds of a row that keep their weights in results/."""
    folder = os.path.join(results_dir, experiment, row)
    if not os.path.isdir(folder):
        return []
    return sorted(int(d[4:]) for d in os.listdir(folder)
                  if d.startswith("seed") and d[4:].isdigit() and os.path.isfile(os.path.join(folder, d, WEIGHTS)))


def _checkpoint_weights(checkpoint):
    """The model weights (no optimizer state, no EMA) of a training checkpoint, as numpy arrays."""
    from ppresvar.engine.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)["model"]
    return {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in state.items()}


def write_weights(state, path, expected_top1, tolerance, evaluate, source):
    """Keep a run's last weights ``state`` ({name: array}) at ``path`` in
    float16 when ``evaluate(path)`` (the ledger's ``tools/eval.py`` command
    on that file) gives the run's test top-1 ``expected_top1`` within
    ``tolerance``: half the bytes of float32, which keeps results/ small; else
    in float32, checked the same way. The file's metadata names the dtype and
    that the float16 values are the run's float32 weights rounded. Returns the
    kept file's evaluation (top1, top5, loss, samples) and its ``dtype``."""
    from ppresvar import safetensors

    got = None
    for dtype in ("float16", "float32"):
        with np.errstate(over="ignore"):  # checked just below
            arrays = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in state.items()}
        if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
            continue  # a value beyond float16's range
        note = "last weights of a run" + (", float32 rounded to float16" if dtype == "float16" else "")
        safetensors.save(arrays, path, metadata={"format": "paddle-state-dict", "source": source, "dtype": dtype,
                                                 "note": note})
        got = evaluate(path)
        if abs(got["top1"] - expected_top1) <= tolerance:
            return dict({k: got[k] for k in ("top1", "top5", "loss", "samples")}, dtype=dtype)
    raise DataError("%s: tools/eval.py on the kept weights gives top-1 %s, the run's test figure is %.4f"
                    % (path, "%.4f" % got["top1"] if got else "nothing", expected_top1))


def tolerance(framework):
    """How far the kept weights' top-1 may lie from the run's test figure:
    two test images for ppresvar (evaluation in other batches and threads), five for
    a PyTorch run (evaluated in ppresvar after the conversion of its weights)."""
    return 5e-4 if framework == "torch" else 2e-4


def _keep_checked(state, folder, row, framework, python, data_file, config, expected_top1):
    """:func:`write_weights` into ``folder``, checked with the ledger's
    command (:func:`eval_argv`) run with the run's ``config``."""
    argv = eval_argv(row, folder, data_file, config)
    source = "PyTorch reference run" if framework == "torch" else "ppresvar run"
    return write_weights(state, os.path.join(folder, WEIGHTS), expected_top1, tolerance(framework),
                         lambda path: _eval(python, path, argv), source)


def halve_kept_weights(manifest, experiment, results_dir, python, data_file, log=print):
    """Keep again, through :func:`write_weights`, every float32
    ``model.safetensors`` of ``experiment`` in ``results_dir``: float16 where
    the ledger's command on the rounded weights gives the run's test figure,
    float32 otherwise; ``test.json``'s ``weights`` records what that command
    gave. For weights kept before float16 (``--halve-weights``)."""
    from ppresvar import safetensors

    for name, row in manifest[experiment]["rows"].items():
        for seed in row_weights(results_dir, experiment, name):
            folder = os.path.join(results_dir, experiment, name, "seed%d" % seed)
            state, meta = safetensors.load(os.path.join(folder, WEIGHTS))
            if meta.get("dtype") == "float16":
                continue
            with open(os.path.join(folder, "test.json")) as f:
                test = json.load(f)
            with open(os.path.join(folder, "run.json")) as f:
                framework = json.load(f)["framework"]
            tmp = folder + ".part"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            test["weights"] = _keep_checked(state, tmp, row, framework, python, data_file,
                                            os.path.join(folder, "config.yaml"), test["last"]["top1"])
            os.replace(os.path.join(tmp, WEIGHTS), os.path.join(folder, WEIGHTS))
            shutil.rmtree(tmp)
            with open(os.path.join(folder, "test.json"), "w") as f:
                json.dump(test, f, indent=1)
            log("%s/%s seed %d: weights kept in %s (top-1 %.2f%%)" % (
                experiment, name, seed, test["weights"]["dtype"], 100 * test["weights"]["top1"]))


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def machine_paths(run_dir, config, command):
    """``[(path, placeholder)]``: the runs folder and the data archive of the
    machine a run was made on (its run directory's grandparent; the configs'
    ``data_file`` values and a torch command's ``--data``), longest first."""
    subs = {os.path.dirname(os.path.dirname(os.path.abspath(run_dir))): "<runs dir>"}
    data = re.findall(r"--data (\S+)", command or "")
    for section in ((config or {}).get("DataLoader") or {}).values():
        data.append(((section or {}).get("dataset") or {}).get("data_file"))
    for path in data:
        if isinstance(path, str) and os.path.isabs(path):
            subs[path] = "<cifar archive>"
    return sorted(subs.items(), key=lambda kv: -len(kv[0]))


def make_portable(result_dir, subs):
    """Write this machine's paths in a kept result's text files as
    placeholders (``subs`` from :func:`machine_paths`)."""
    for name in ("config.yaml", "run.json", "test.json"):
        path = os.path.join(result_dir, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for old, placeholder in subs:
            text = text.replace(old, placeholder)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def collect(step, python, torch_python=None, data_file=None, log=print):
    """Evaluate a finished run on the test split and copy its small files
    into ``results/``; the first run kept of a row keeps its last weights
    too (``model.safetensors``), checked by evaluating them with the command
    the ledger prints (:func:`eval_argv`). Returns the result directory."""
    run_dir, out = step["run_dir"], step["result_dir"]
    row = step["spec"]
    results_dir = os.path.dirname(os.path.dirname(os.path.dirname(out)))
    keep_weights = not [s for s in row_weights(results_dir, step["experiment"], step["row"]) if s != step["seed"]]
    metrics = _read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    tmp = out + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if step["framework"] == "torch":
        with open(os.path.join(run_dir, "test.json")) as f:
            test = {"last": json.load(f)}
        config = {"framework": "PyTorch reference (reference/torch_reference.py --train)",
                  "arguments": [str(a) for a in row["torch"]] + ["--seed", str(step["seed"])]}
        if keep_weights:
            if not torch_python:
                raise ConfigError("keeping the weights of row %s needs --torch-python PY" % step["row"])
            argv = _torch_argv(row, step["seed"], run_dir, data_file or "-")
            argv = [a for a in argv if a != "--train"] + ["--to-ppresvar"]
            subprocess.run([torch_python] + argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            from ppresvar import safetensors

            state = safetensors.load(os.path.join(run_dir, WEIGHTS))[0]
    else:
        test = {"last": _eval(python, os.path.join(run_dir, "checkpoints", "last.pdckpt"))}
        best = os.path.join(run_dir, "checkpoints", "best.pdckpt")
        if os.path.isfile(best):
            test["best"] = _eval(python, best)
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
            config = yaml.safe_load(f)
        if keep_weights:
            state = _checkpoint_weights(os.path.join(run_dir, "checkpoints", "last.pdckpt"))
    if keep_weights:  # the ledger's command, run on the weights as kept (the run's config: this machine's paths)
        test["weights"] = _keep_checked(state, tmp, row, step["framework"], python, data_file or _data_file(config),
                                        os.path.join(run_dir, "config.yaml"), test["last"]["top1"])
    prov = {}
    if os.path.isfile(provenance_path(run_dir)):
        with open(provenance_path(run_dir)) as f:
            prov = json.load(f)
    with open(os.path.join(tmp, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    shutil.copyfile(os.path.join(run_dir, "metrics.jsonl"), os.path.join(tmp, "metrics.jsonl"))
    with open(os.path.join(tmp, "test.json"), "w") as f:
        json.dump(test, f, indent=1)
    plot_kept(tmp, metrics, config, step)
    diff = os.path.normpath(run_dir) + ".provenance.diff"
    if os.path.isfile(diff):
        shutil.copyfile(diff, os.path.join(tmp, "uncommitted.diff"))
    run = {
        "experiment": step["experiment"], "row": step["row"], "seed": step["seed"], "framework": step["framework"],
        "budget": row["budget"], "epochs": len(metrics),
        "train_time_s": round(sum(m.get("epoch_time_s") or 0 for m in metrics), 1),
        "commit": prov.get("commit"), "dirty": prov.get("dirty"),
        "uncommitted": "uncommitted.diff" if os.path.isfile(diff) else None,
        "machine": prov.get("machine") or machine(),
        "started": prov.get("started"), "command": prov.get("command"), "note": prov.get("note"),
        "versions": _versions(step["framework"], test["last"]),
    }
    with open(os.path.join(tmp, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    make_portable(tmp, machine_paths(run_dir, config, run["command"]))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    os.replace(tmp, out)
    log("kept %s: test top-1 %.2f%%" % (os.path.relpath(out, ROOT), 100 * test["last"]["top1"]))
    return out


def plot_kept(result_dir, metrics=None, config=None, step=None):
    """``curves.png`` of a kept run, titled with its model, experiment, row
    and seed, its validation curves labelled with the images they show (from
    the kept files when ``metrics``/``config``/``step`` are not given)."""
    from ppresvar.engine.logger import plot_curves

    if metrics is None:
        metrics = _read_jsonl(os.path.join(result_dir, "metrics.jsonl"))
    if config is None:
        with open(os.path.join(result_dir, "config.yaml"), encoding="utf-8") as f:
            config = yaml.safe_load(f)
    if step is None:
        with open(os.path.join(result_dir, "run.json")) as f:
            run = json.load(f)
        step = {"experiment": run["experiment"], "row": run["row"], "seed": run["seed"],
                "spec": {"torch": config.get("arguments", [])}}
    if "Arch" in config:
        model = config["Arch"]["name"]
    else:
        args = [str(a) for a in config.get("arguments", [])]
        model = "%s, PyTorch reference" % (args[args.index("--model") + 1] if "--model" in args else "resnet20")
    title = "%s, %s/%s seed %d" % (model, step["experiment"], step["row"], step["seed"])
    return plot_curves(metrics, os.path.join(result_dir, "curves.png"), title, _val_label(config, step["spec"]))


def _data_file(config):
    for section in ((config or {}).get("DataLoader") or {}).values():
        path = ((section or {}).get("dataset") or {}).get("data_file")
        if path:
            return path
    return None


def _val_label(config, row):
    """Which images a kept run's validation curve shows."""
    from ppresvar.engine.logger import split_label

    if "DataLoader" in config:
        return split_label(config)
    args = [str(a) for a in row.get("torch", [])]
    size = args[args.index("--val-size") + 1] if "--val-size" in args else "5000"
    seed = args[args.index("--split-seed") + 1] if "--split-seed" in args else "0"
    return "%s images held out of Cifar10's train split (split_seed %s)" % (size, seed)


def _versions(framework, test):
    if framework == "torch":
        return {"torch": test.get("torch")}
    import paddle

    return {"paddle": paddle.__version__, "python": platform.python_version()}


def python_of_this_process():
    return sys.executable
