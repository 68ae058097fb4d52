"""Kill anywhere: tools/train.py killed with SIGKILL at 20 moments of a short
run (between steps, during validation, with the metrics line written but no
checkpoint, in the middle of writing a checkpoint, between the best and the
last checkpoint), resumed each time with --resume, ends with the metrics and
the weights of an uninterrupted run; no checkpoint is ever unreadable and a
kill in the middle of a write leaves the previous checkpoint in place.

The moments are reached with the test-only hook of ppresvar/engine/faults.py
(PPRESVAR_TEST_FAULT), which sends the process SIGKILL itself, so that each
kill lands exactly where it is meant to."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import ROOT, cifar_args, run_tool
from ppresvar.engine.checkpoint import TMP_PREFIX, load_checkpoint
from ppresvar.engine.logger import read_metrics

TIMING = ("epoch_time_s", "images_per_s")

# 3 epochs of 3 steps (96 training images, batch 32), validation in 2 batches of 16
MOMENTS = [
    "step:1", "step:2", "val:1:1", "val:1:2", "logged:1", "ckpt-write:1:best", "ckpt-written:1:best",
    "ckpt-write:1:last", "ckpt-written:1:last",
    "step:4", "step:5", "val:2:1", "logged:2", "ckpt-write:2:last",
    "step:7", "step:8", "step:9", "val:3:2", "logged:3", "ckpt-write:3:last",
]


def _args(archive, out, name):
    return cifar_args(archive, out, name, epochs=3) + ["-o", "DataLoader.Eval.batch_size=16"]


def _train(args, fault=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PPRESVAR_TEST_FAULT", None)
    if fault:
        env["PPRESVAR_TEST_FAULT"] = "kill@" + fault
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py")] + args, cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _weights(path):
    return {k: np.asarray(v) for k, v in load_checkpoint(path)["model"].items()}


@pytest.mark.slow
def test_killed_at_20_moments_and_resumed_ends_like_an_uninterrupted_run(archive, tmp_path):
    assert len(MOMENTS) == 20
    out = str(tmp_path)
    full = _train(_args(archive, out, "full"))
    assert full.returncode == 0, full.stderr[-2000:]

    run = os.path.join(out, "part")
    ckpts = os.path.join(run, "checkpoints")
    args = _args(archive, out, "part")
    for moment in MOMENTS:
        before = {}
        for name in ("best", "last"):
            path = os.path.join(ckpts, name + ".pdckpt")
            if os.path.isfile(path):
                before[name] = open(path, "rb").read()
        proc = _train(args, moment)
        assert proc.returncode == -signal.SIGKILL, "not killed at %s: %s" % (moment, proc.stderr[-2000:])
        args = ["--resume", run]
        # every checkpoint on disk reads; a kill mid-write left the previous file as it was
        for name in ("best", "last"):
            path = os.path.join(ckpts, name + ".pdckpt")
            if os.path.isfile(path):
                load_checkpoint(path)
        if moment.startswith("ckpt-write:"):
            name = moment.split(":")[2]
            path = os.path.join(ckpts, name + ".pdckpt")
            if name in before:
                assert open(path, "rb").read() == before[name], moment
            else:
                assert not os.path.exists(path), moment
            assert any(f.startswith(TMP_PREFIX) for f in os.listdir(ckpts)), "the kill was not mid-write"
    last = _train(args)
    assert last.returncode == 0, last.stderr[-2000:]
    assert not [f for f in os.listdir(ckpts) if f.startswith(TMP_PREFIX)], "partial files left behind"
    assert not os.path.exists(os.path.join(run, ".lock"))

    a = read_metrics(os.path.join(out, "full", "metrics.jsonl"))
    b = read_metrics(os.path.join(run, "metrics.jsonl"))
    assert [r["epoch"] for r in b] == [1, 2, 3]
    assert _strip(a) == _strip(b)
    for name in ("last", "best"):
        wa, wb = _weights(os.path.join(out, "full", "checkpoints", name + ".pdckpt")), _weights(
            os.path.join(ckpts, name + ".pdckpt"))
        assert sorted(wa) == sorted(wb)
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg="%s %s" % (name, k))


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(archive, tmp_path):
    out = str(tmp_path)
    proc = _train(_args(archive, out, "early"), "step:2")
    assert proc.returncode == -signal.SIGKILL
    run = os.path.join(out, "early")
    assert not os.path.exists(os.path.join(run, "checkpoints", "last.pdckpt"))
    again = run_tool("train", ["--resume", run, "-o", "Global.epochs=1"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "starting it over there" in again.stdout
    assert [r["epoch"] for r in read_metrics(os.path.join(run, "metrics.jsonl"))] == [1]
    assert os.listdir(out) == ["early"]


def test_a_full_disk_stops_training_with_one_line_and_keeps_the_previous_checkpoint(archive, tmp_path, capsys,
                                                                                   monkeypatch):
    """tools/train.py (in process): writing epoch 2's last.pdckpt fails for
    want of space (simulated half-way through the write); one error line,
    exit 2, epoch 1's checkpoint intact, and --resume then finishes the run."""
    import errno

    from cli_helpers import tool
    from ppresvar.engine import checkpoint

    real = checkpoint.faults.point

    def full(*where):
        if where == ("ckpt-write", 2, "last"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*where)

    monkeypatch.setattr(checkpoint.faults, "point", full)
    out = str(tmp_path)
    with pytest.raises(SystemExit) as e:
        tool("train").main(_args(archive, out, "full_disk"))
    assert e.value.code == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    run = os.path.join(out, "full_disk")
    last = os.path.join(run, "checkpoints", "last.pdckpt")
    assert len(err) == 1 and "cannot write checkpoint %s (No space left on device)" % last in err[0], err
    assert "previous last.pdckpt is intact" in err[0] and "--resume %s" % run in err[0]
    assert load_checkpoint(last)["epoch"] == 1
    assert not [f for f in os.listdir(os.path.dirname(last)) if f.startswith(TMP_PREFIX)]
    monkeypatch.setattr(checkpoint.faults, "point", real)
    resumed = run_tool("train", ["--resume", run])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["epoch"] for r in read_metrics(os.path.join(run, "metrics.jsonl"))] == [1, 2, 3]
