"""tools/train.py on a CPU: one data-parallel process per core (engine/launch.py)."""
import copy
import os

import pytest

from ppresvar.engine import launch
from ppresvar.engine.config import load_config
from ppresvar.errors import ConfigError
from ppresvar.engine.logger import read_metrics

from cli_helpers import ROOT, cifar_args, run_tool


@pytest.fixture
def cfg():
    return load_config(os.path.join(ROOT, "configs", "resnet20.yaml"))


def test_how_many_processes(cfg, monkeypatch):
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    monkeypatch.setattr(launch.runtime, "available_cores", lambda: 4)
    assert launch.processes_for(cfg, "cpu") == 4        # default: one per core
    assert launch.processes_for(cfg, "gpu") == 1        # never on GPU
    c = copy.deepcopy(cfg)
    c["Global"]["cpu_processes"] = 1
    assert launch.processes_for(c, "cpu") == 1
    c["Global"]["cpu_processes"], c["Global"]["cpu_threads"] = None, 2
    assert launch.processes_for(c, "cpu") == 1          # threads chosen: one process
    c = copy.deepcopy(cfg)
    c["DataLoader"]["Train"]["batch_size"] = 126         # not divisible by 4: one process
    assert launch.processes_for(c, "cpu") == 1
    c["Global"]["cpu_processes"] = 4                     # ...unless asked for: refused
    with pytest.raises(ConfigError, match="does not divide"):
        launch.processes_for(c, "cpu")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")       # already under a launcher
    assert launch.processes_for(cfg, "cpu") == 1


def test_batch_is_split_only_for_self_launched_ranks(cfg, monkeypatch):
    monkeypatch.delenv(launch.SPLIT_ENV, raising=False)
    assert launch.split_batch(cfg, 2)["batch_size"] == 128   # a user's launcher: per process
    monkeypatch.setenv(launch.SPLIT_ENV, "1")
    assert launch.split_batch(cfg, 2)["batch_size"] == 64
    assert cfg["DataLoader"]["Train"]["batch_size"] == 128   # the saved config keeps the global batch
    assert launch.split_batch(cfg, 1)["batch_size"] == 128


def test_train_runs_as_two_processes(archive, tmp_path):
    """One run directory, rank 0's lines only, and as many iterations per
    epoch as one process with the whole batch."""
    out = str(tmp_path / "out")
    proc = run_tool("train", cifar_args(archive, out, "two", epochs=1, batch=16, processes=2), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "training as 2 data-parallel processes" in proc.stdout
    assert "on each of 2 ranks" in proc.stdout
    assert "LAUNCH" not in proc.stdout and proc.stdout.count("model resnet20:") == 1
    train_images = 128 - 32  # the conftest archive's training images less the held-out ones
    assert "%d iterations per epoch" % -(-train_images // 16) in proc.stdout
    assert os.listdir(out) == ["two"]
    assert len(read_metrics(os.path.join(out, "two", "metrics.jsonl"))) == 1


def test_rank_error_is_one_line(archive, tmp_path):
    args = cifar_args(archive, str(tmp_path), "bad", epochs=1, batch=16, processes=2)
    args += ["-o", "DataLoader.*.dataset.data_file=%s" % (tmp_path / "missing.tar.gz")]
    proc = run_tool("train", args, timeout=600)
    assert proc.returncode == 2
    errors = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and "missing.tar.gz" in errors[0], proc.stderr
