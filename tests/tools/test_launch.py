"""tools/train.py on a CPU: one process by default, data parallel when asked (engine/launch.py)."""
import copy
import os

import pytest

from ppresvar import runtime
from ppresvar.engine import launch
from ppresvar.engine.config import load_config
from ppresvar.errors import ConfigError
from ppresvar.engine.logger import read_metrics

from cli_helpers import ROOT, cifar_args, run_tool


@pytest.fixture
def cfg():
    return load_config(os.path.join(ROOT, "configs", "resnet20.yaml"))


def test_how_many_processes(cfg, monkeypatch):
    """One process by default, on any core count: batch norm sees the
    config's batch whatever the machine; data parallel only when asked."""
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    for cores in (1, 2, 4, 16, 64):
        monkeypatch.setattr(runtime, "available_cores", lambda: cores)
        assert launch.processes_for(cfg, "cpu") == 1    # default: one process using every core
    c = copy.deepcopy(cfg)
    c["Global"]["cpu_processes"] = 1
    assert launch.processes_for(c, "cpu") == 1
    c["Global"]["cpu_processes"] = 4
    assert launch.processes_for(c, "cpu") == 4          # asked for
    assert launch.processes_for(c, "gpu") == 1          # never on GPU
    c["DataLoader"]["Train"]["batch_size"] = 126         # a count that does not divide the batch: refused
    with pytest.raises(ConfigError, match="does not divide"):
        launch.processes_for(c, "cpu")
    c["DataLoader"]["Train"]["batch_size"] = 3
    with pytest.raises(ConfigError, match="does not divide"):
        launch.processes_for(c, "cpu")
    c["DataLoader"]["Train"]["batch_size"] = 128
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")       # already under a launcher
    assert launch.processes_for(c, "cpu") == 1


def test_a_count_that_splits_batch_norm_below_the_safe_size_says_so(cfg, monkeypatch):
    """An explicit count that leaves a process fewer than 32 images runs as
    asked, with one line; one that does not is silent."""
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    said = []
    for n, batch in ((2, 128), (4, 128), (8, 256), (1, 8)):
        c = copy.deepcopy(cfg)
        c["Global"]["cpu_processes"], c["DataLoader"]["Train"]["batch_size"] = n, batch
        assert launch.processes_for(c, "cpu", say=said.append) == n
    assert said == []
    c = copy.deepcopy(cfg)
    c["Global"]["cpu_processes"] = 8
    assert launch.processes_for(c, "cpu", say=said.append) == 8
    assert len(said) == 1 and "16 images" in said[0] and "docs/training.md" in said[0]


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


# ------------------------------------------------------------------ faults
# A fault on one rank, injected with the test-only hook of engine/faults.py:
# every rank stops within the timeout and the user reads one line naming the
# rank, the epoch and the iteration (the rest is in the launcher's logs).

def _two(archive, out, name, fault=None, epochs=1, extra=()):
    env = dict(os.environ)
    env.pop("PPRESVAR_TEST_FAULT", None)
    if fault:
        env["PPRESVAR_TEST_FAULT"] = fault
    args = cifar_args(archive, out, name, epochs=epochs, batch=16, processes=2) + list(extra)
    return run_tool("train", args, timeout=300, env=env)


def _one_error_line(proc):
    errors = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout and "LAUNCH ERROR" not in proc.stdout, proc.stdout[-3000:]
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("fault, code, said", [
    ("nan@loss:3@rank1", 2, "loss is nan on rank 1 of 2 at epoch 1, iteration 3"),
    ("raise@step:3@rank1", 1, "rank 1 of 2 failed at epoch 1, iteration 3 with RuntimeError: injected fault"),
    ("kill@step:3@rank1", 1, "rank 1 of 2 was killed"),
    ("kill@step:3@rank0", 1, "rank 0 of 2 was killed"),
    # killed while rank 0 waits for it outside gloo (engine.distributed.wait_for_ranks)
    ("kill@batch:2:1@rank1", 1, "rank 1 of 2 was killed"),
])
def test_a_fault_on_one_rank_stops_every_rank_with_one_line(archive, tmp_path, fault, code, said):
    out = str(tmp_path / "out")
    proc = _two(archive, out, "f", fault, epochs=2)
    line = _one_error_line(proc)
    assert proc.returncode == code and said in line, line
    if fault.startswith("nan"):
        assert "training stopped" in line and "--resume" in line


# Gloo gives up on an all-reduce after 30 s. A rank 35 s late where ranks drift
# apart (its loader starting an epoch, rank 0 writing checkpoints) is waited for;
# one 35 s late in the middle of an epoch stops the run, named as late, not killed.
def _strip(run):
    return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")}
            for r in read_metrics(os.path.join(run, "metrics.jsonl"))]


@pytest.mark.slow
def test_a_rank_far_behind_at_an_epoch_boundary_is_waited_for(archive, tmp_path):
    out = str(tmp_path / "out")
    full = _two(archive, out, "full", epochs=2)
    assert full.returncode == 0, full.stderr[-3000:]
    for name, fault in (("loader", "slow35@batch:2:1@rank1"), ("writer", "slow35@logged:1@rank0")):
        proc = _two(archive, out, name, fault, epochs=2)
        assert proc.returncode == 0, (fault, proc.stderr[-3000:])
        assert _strip(os.path.join(out, name)) == _strip(os.path.join(out, "full")), fault
    assert max(r["epoch_time_s"] for r in read_metrics(os.path.join(out, "loader", "metrics.jsonl"))) > 35


@pytest.mark.slow
def test_a_rank_far_behind_mid_epoch_is_named(archive, tmp_path):
    proc = _two(archive, str(tmp_path / "out"), "late", "slow35@batch:1:3@rank1", epochs=2)
    line = _one_error_line(proc)
    assert proc.returncode == 1, line
    assert "rank 1 of 2 fell more than 30 s behind rank 0 at epoch 1, iteration 3" in line and "--resume" in line


@pytest.mark.slow
def test_resume_of_two_processes_and_on_another_number_of_processes(archive, tmp_path):
    """A 2-process run killed after its first epoch and resumed ends like an
    uninterrupted 2-process run; resumed as 1 process it goes on (the same
    global batch and schedule, with a note), and the reverse too; a resume
    that would change the global batch is refused."""
    out = str(tmp_path / "out")
    full = _two(archive, out, "full", epochs=2)
    assert full.returncode == 0, full.stderr[-3000:]
    part = _two(archive, out, "part", "kill@ckpt-written:1:last@rank0", epochs=2)
    assert part.returncode != 0
    run = os.path.join(out, "part")
    assert len(read_metrics(os.path.join(run, "metrics.jsonl"))) == 1
    resumed = run_tool("train", ["--resume", run], timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")} for r in rs]  # noqa
    assert strip(read_metrics(os.path.join(run, "metrics.jsonl"))) == \
        strip(read_metrics(os.path.join(out, "full", "metrics.jsonl")))

    # 2 -> 1 process: goes on, says so
    one = run_tool("train", ["--resume", os.path.join(out, "full"), "-o", "Global.epochs=3",
                             "-o", "Global.cpu_processes=1"], timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "resumed on 1 process, the run trained on 2: the same global batch (16)" in one.stdout
    assert [r["epoch"] for r in read_metrics(os.path.join(out, "full", "metrics.jsonl"))] == [1, 2, 3]
    # 1 -> 2 processes
    two = run_tool("train", ["--resume", os.path.join(out, "full"), "-o", "Global.epochs=4",
                             "-o", "Global.cpu_processes=2"], timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "resumed on 2 processes, the run trained on 1" in two.stdout
    # another global batch: refused before anything is written
    before = open(os.path.join(out, "full", "metrics.jsonl")).read()
    bad = run_tool("train", ["--resume", os.path.join(out, "full"), "-o", "Global.epochs=5",
                             "-o", "DataLoader.Train.batch_size=32", "-o", "Global.cpu_processes=1"], timeout=300)
    assert bad.returncode == 2
    line = _one_error_line(bad)
    assert "global batch of 16 (2 processes)" in line and "global batch of 32 (1 process)" in line, line
    assert open(os.path.join(out, "full", "metrics.jsonl")).read() == before


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, log_dir, *launch_args):
    """tools/train.py under paddle.distributed.launch, as docs/training.md gives it."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--log_dir", log_dir] + list(launch_args) + [
        os.path.join(ROOT, "tools", "train.py")] + args
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PPRESVAR_TEST_FAULT", None)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)


@pytest.mark.slow
def test_two_nodes_over_loopback_train_like_one_node_with_two_processes(archive, tmp_path):
    """Multi-node data parallel through paddle's launcher (--nnodes, --master):
    two launchers on this machine, one process each, rendezvous on the
    loopback address, give the metrics of one launcher with two processes;
    the run resumes on one node with one process under the rule for process
    counts (the same global batch, with a note)."""
    out = str(tmp_path / "out")

    def args(name):  # under a launcher the batch is per process: 2 x 8
        return cifar_args(archive, out, name, epochs=2, batch=8)

    one = _launch(args("one_node"), str(tmp_path / "log1"), "--nproc_per_node", "2")
    text = one.communicate(timeout=300)[0]
    assert one.returncode == 0, text[-3000:]
    master = "127.0.0.1:%d" % _free_port()
    nodes = [_launch(args("two_nodes"), str(tmp_path / ("node%d" % r)), "--master", master, "--nnodes", "2",
                     "--rank", str(r), "--nproc_per_node", "1") for r in (0, 1)]
    texts = [n.communicate(timeout=300)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], texts[0][-2000:] + texts[1][-2000:]
    assert _strip(os.path.join(out, "two_nodes")) == _strip(os.path.join(out, "one_node"))
    # resume on one node, one process: the global batch (16) kept
    resumed = run_tool("train", ["--resume", os.path.join(out, "two_nodes"), "-o", "Global.epochs=3",
                                 "-o", "Global.cpu_processes=1", "-o", "DataLoader.Train.batch_size=16"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed on 1 process, the run trained on 2: the same global batch (16)" in resumed.stdout
    assert [r["epoch"] for r in read_metrics(os.path.join(out, "two_nodes", "metrics.jsonl"))] == [1, 2, 3]
