"""tools/train.py and tools/eval.py as a user runs them: a CIFAR-format
archive, a run directory, evaluation, a killed run resumed, and bad input
answered with one line and exit code 2."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml

from cli_helpers import ROOT, cifar_args, run_tool, tool
from ppresvar.engine.logger import EPOCH_KEYS, read_metrics

TIMING = ("epoch_time_s", "images_per_s")


def strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_train_writes_the_run_directory(trained_run):
    run, proc = trained_run
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["best.pdckpt", "last.pdckpt"]
    records = read_metrics(os.path.join(run, "metrics.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2] and all(tuple(r) == EPOCH_KEYS for r in records)
    cfg = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    assert cfg["Arch"] == {"name": "resnet20", "num_classes": 10} and cfg["Global"]["epochs"] == 2
    assert cfg["DataLoader"]["Train"]["dataset"]["val_size"] == 32
    log = open(os.path.join(run, "train.log")).read()
    assert "epoch 2/2" in log and "train_loss" in log
    assert "run directory %s" % run in proc.stdout
    assert "step 2/3" in proc.stdout  # plain progress lines when stdout is not a terminal
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert os.path.isfile(os.path.join(run, "curves.png"))


def test_eval_reproduces_the_logged_validation_figures(trained_run):
    run, _ = trained_run
    records = read_metrics(os.path.join(run, "metrics.jsonl"))
    best = max(records, key=lambda r: r["val_top1"])  # the first of equals, as the trainer keeps
    best = [r for r in records if r["val_top1"] == best["val_top1"]][0]
    weights = os.path.join(run, "checkpoints", "best.pdckpt")
    proc = run_tool("eval", ["-c", os.path.join(run, "config.yaml"), "-o", "Global.pretrained_model=%s" % weights,
                             "--split", "val"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["samples"] == 32 and result["epoch"] == best["epoch"]
    assert result["top1"] == pytest.approx(best["val_top1"], abs=1e-9)
    assert result["top5"] == pytest.approx(best["val_top5"], abs=1e-9)
    assert result["loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    # the test split, with the config read back from the checkpoint
    proc = run_tool("eval", ["-o", "Global.pretrained_model=%s" % weights])
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["split"] == "test" and result["samples"] == 40
    assert set(result) >= {"top1", "top5", "loss"} and "top-1" in lines[-2]


def test_kill_and_resume_gives_the_same_metrics(archive, tmp_path):
    out = str(tmp_path)
    full = run_tool("train", cifar_args(archive, out, "full", epochs=3))
    assert full.returncode == 0, full.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py")] + cifar_args(archive, out, "part", epochs=3)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True)
    for line in proc.stdout:
        if line.startswith("epoch 1/3  train_loss"):  # epoch 1 is logged and checkpointed
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    part = os.path.join(out, "part")
    done = len(read_metrics(os.path.join(part, "metrics.jsonl")))
    assert 1 <= done < 3, "the run was not interrupted"
    resumed = run_tool("train", ["--resume", part])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed after epoch %d" % done in resumed.stdout
    a = read_metrics(os.path.join(out, "full", "metrics.jsonl"))
    b = read_metrics(os.path.join(part, "metrics.jsonl"))
    assert strip(a) == strip(b)


# ------------------------------------------------------------------ errors

def _fails(capsys, name, args):
    """Run a tool in process; it must exit 2 with one 'error:' line on stderr."""
    with pytest.raises(SystemExit) as e:
        tool(name).main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_config_input(capsys, archive, tmp_path):
    out = str(tmp_path / "out")
    base = cifar_args(archive, out, "x")
    msg = _fails(capsys, "train", base + ["-o", "Arch.name=resnet21"])
    assert "resnet21" in msg and "resnet20" in msg
    msg = _fails(capsys, "train", base + ["-o", "Global.epoch=3"])
    assert "Global.epoch" in msg and "did you mean Global.epochs" in msg
    msg = _fails(capsys, "train", base + ["-o", "Global.epochs=three"])
    assert "Global.epochs" in msg and "integer" in msg
    msg = _fails(capsys, "train", ["-c", str(tmp_path / "none.yaml")])
    assert "none.yaml" in msg
    assert not os.path.exists(out)  # nothing written


def test_bad_data(capsys, archive, tmp_path):
    out = str(tmp_path / "out")
    missing = str(tmp_path / "absent" / "cifar-10-python.tar.gz")
    msg = _fails(capsys, "train", cifar_args(missing, out, "x"))
    assert missing in msg and "data_file" in msg
    corrupt = tmp_path / "cifar-10-python.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    msg = _fails(capsys, "train", cifar_args(str(corrupt), out, "x"))
    assert "damaged" in msg
    assert not os.path.exists(out)


def test_bad_checkpoints(capsys, trained_run, tmp_path):
    run, _ = trained_run
    garbage = tmp_path / "last.pdckpt"
    garbage.write_bytes(os.urandom(5000))
    msg = _fails(capsys, "train", ["--resume", str(garbage)])
    assert str(garbage) in msg and "damaged" in msg
    msg = _fails(capsys, "eval", ["-c", os.path.join(run, "config.yaml"), "-o", "Arch.name=resnet32",
                                  "-o", "Global.pretrained_model=%s" % os.path.join(run, "checkpoints", "last.pdckpt")])
    assert "does not fit" in msg and "resnet20" in msg and "missing" in msg
    msg = _fails(capsys, "eval", ["-c", os.path.join(run, "config.yaml")])
    assert "Global.pretrained_model" in msg


def test_nan_loss_stops_and_keeps_what_was_saved(capsys, trained_run, tmp_path):
    run = str(tmp_path / "copy")
    shutil.copytree(trained_run[0], run)
    last = os.path.join(run, "checkpoints", "last.pdckpt")
    saved = {n: open(os.path.join(run, "checkpoints", n), "rb").read() for n in ("last.pdckpt", "best.pdckpt")}
    metrics = open(os.path.join(run, "metrics.jsonl")).read()
    msg = _fails(capsys, "train", ["--resume", run, "-o", "Global.epochs=4",
                                   "-o", "Optimizer.lr.learning_rate=1e30", "-o", "Optimizer.lr.milestones=[90]"])
    assert "loss is nan" in msg.lower() or "loss is inf" in msg.lower()
    assert last in msg and "epoch 2" in msg
    for name, blob in saved.items():
        assert open(os.path.join(run, "checkpoints", name), "rb").read() == blob
    assert open(os.path.join(run, "metrics.jsonl")).read() == metrics


def test_debug_shows_the_traceback(capsys, archive, tmp_path):
    from ppresvar.errors import ConfigError

    with pytest.raises(ConfigError):
        tool("train").main(cifar_args(archive, str(tmp_path), "x") + ["-o", "Global.epoch=3", "--debug"])


def test_exit_code_and_traceback_in_a_real_process(archive, tmp_path):
    args = cifar_args(archive, str(tmp_path), "x") + ["-o", "Optimizer.nam=1"]
    proc = run_tool("train", args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Optimizer.nam" in proc.stderr
    proc = run_tool("train", args + ["--debug"])
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_data_parallel_on_cpu(archive, tmp_path):
    """Two processes through paddle.distributed.launch (gloo on CPU): one run
    directory written by rank 0, and validation figures summed over the two
    shards equal a one-process evaluation of the same checkpoint."""
    out = str(tmp_path / "out")
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node=2",
           "--log_dir", str(tmp_path / "log"), os.path.join(ROOT, "tools", "train.py")]
    proc = subprocess.run(cmd + cifar_args(archive, out, "ddp", epochs=1, batch=16), cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert os.listdir(out) == ["ddp"]
    logged = read_metrics(os.path.join(out, "ddp", "metrics.jsonl"))
    assert len(logged) == 1
    weights = os.path.join(out, "ddp", "checkpoints", "last.pdckpt")
    ev = run_tool("eval", ["-o", "Global.pretrained_model=%s" % weights, "--split", "val"])
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    assert result["samples"] == 32
    assert result["top1"] == pytest.approx(logged[0]["val_top1"]) and \
        result["loss"] == pytest.approx(logged[0]["val_loss"], rel=1e-5)


def test_seeds_trains_each_seed_and_reports_mean_and_spread(archive, tmp_path):
    out = str(tmp_path / "runs")
    args = cifar_args(archive, out, "r20", epochs=1) + ["-o", "Global.seed=5", "--seeds", "2"]
    r = run_tool("train", args)
    assert r.returncode == 0, r.stderr[-2000:]
    best = []
    for seed in (5, 6):
        records = [json.loads(line) for line in open(os.path.join(out, "r20-seed%d" % seed, "metrics.jsonl"))]
        cfg = yaml.safe_load(open(os.path.join(out, "r20-seed%d" % seed, "config.yaml")))
        assert cfg["Global"]["seed"] == seed and len(records) == 1
        best.append(records[0]["val_top1"])
    summary = json.load(open(os.path.join(out, "r20-seeds.json")))
    assert summary["mean"] == pytest.approx(sum(best) / 2)
    assert summary["std"] == pytest.approx(abs(best[0] - best[1]) / 2 ** 0.5)
    assert "2 seeds: best val_top1 mean %.4g" % (100 * sum(best) / 2) in r.stdout
    # --seeds starts new runs: with --resume it is refused in one line
    r = run_tool("train", ["--resume", os.path.join(out, "r20-seed5"), "--seeds", "2"])
    assert r.returncode == 2 and r.stderr.startswith("error: --seeds starts new runs")
