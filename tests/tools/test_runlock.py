"""One writer per run directory and per export folder (engine/runlock.py):
a second process is refused with one line naming the first; a killed holder
leaves no stuck lock."""
import os
import signal
import subprocess
import sys

import pytest

from cli_helpers import ROOT, cifar_args, run_tool, tool
from ppresvar.engine.logger import read_metrics
from ppresvar.engine.runlock import LOCK_NAME, FolderInUseError, FolderLock, holder_of

HOLD = "import sys, time; from ppresvar.engine.runlock import FolderLock; FolderLock(sys.argv[1]).acquire(); " \
       "print('held', flush=True); time.sleep(600)"


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, folder], cwd=ROOT, stdout=subprocess.PIPE,
                            universal_newlines=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_refuses_and_a_killed_one_leaves_no_stuck_lock(tmp_path):
    folder = str(tmp_path / "run")
    proc = _holder(folder)
    try:
        with pytest.raises(FolderInUseError) as e:
            FolderLock(folder, "run directory").acquire()
        assert "run directory %s is in use by process %d" % (folder, proc.pid) in str(e.value)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(os.path.join(folder, LOCK_NAME))  # the file stays, the lock does not
    with FolderLock(folder) as lock:
        assert holder_of(folder)["pid"] == os.getpid() and lock.fd is not None
    assert not os.path.exists(os.path.join(folder, LOCK_NAME))  # released: removed


def test_a_second_training_on_a_live_run_is_refused(archive, tmp_path):
    out = str(tmp_path)
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py")] + cifar_args(archive, out, "live", epochs=60)
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True)
    run = os.path.join(out, "live")
    try:
        for line in first.stdout:
            if line.startswith("epoch 1/60  train_loss"):
                break
        second = run_tool("train", ["--resume", run], timeout=300)
        assert second.returncode == 2
        errors = second.stderr.strip().splitlines()
        assert len(errors) == 1 and "run directory %s is in use by process %d" % (run, first.pid) in errors[0]
        assert first.poll() is None  # the first goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    epochs = [r["epoch"] for r in read_metrics(os.path.join(run, "metrics.jsonl"))]
    assert epochs == list(range(1, len(epochs) + 1))  # one writer: no interleaved epochs
    # the killed run's lock is not stuck: resume takes it over and goes on
    resumed = run_tool("train", ["--resume", run, "-o", "Global.epochs=%d" % (len(epochs) + 1)], timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["epoch"] for r in read_metrics(os.path.join(run, "metrics.jsonl"))] == list(range(1, len(epochs) + 2))


def test_an_export_folder_in_use_is_refused(capsys, trained_run, tmp_path):
    run, _ = trained_run
    folder = str(tmp_path / "export")
    weights = os.path.join(run, "checkpoints", "best.pdckpt")
    with FolderLock(folder, "export folder"):
        with pytest.raises(SystemExit) as e:
            tool("export").main(["-o", "Global.pretrained_model=%s" % weights, "--output", folder, "--no-check"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "export folder %s is in use by process %d" % (folder, os.getpid()) in err[0], err
    assert os.listdir(folder) == []  # nothing written by the refused export
