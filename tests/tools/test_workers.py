"""Loader workers on CPU, end to end through tools/train.py: 2 workers train
exactly as the in-process loader does (shared memory or pipes), a worker
that raises gives one line and no hang, a small /dev/shm makes the
workers use pipes, and a loop that stops before the loader runs out ends its
workers (no leak, no hang on the next pass)."""
import os
import subprocess
import sys

import pytest
from PIL import Image
import numpy as np

from cli_helpers import ROOT, cifar_args, run_tool
from ppresvar.data import loader as L
from ppresvar.engine.logger import read_metrics

TIMING = ("epoch_time_s", "images_per_s")


def _strip(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(os.path.join(run, "metrics.jsonl"))]


@pytest.mark.parametrize("batched", ["true", "false"])
def test_two_workers_train_like_the_in_process_loader(archive, tmp_path, batched):
    """The batched path (whole-batch NumPy augmentation) and the per-image
    path: the augmentation draws do not depend on which worker makes a batch."""
    out = str(tmp_path)
    runs = {}
    for name, extra in (("w0", []), ("w2shm", ["-o", "DataLoader.*.num_workers=2", "-o",
                                                  "DataLoader.*.use_shared_memory=true"]),
                        ("w2pipe", ["-o", "DataLoader.*.num_workers=2", "-o", "DataLoader.*.use_shared_memory=false"])):
        args = cifar_args(archive, out, name) + ["-o", "DataLoader.*.batched=%s" % batched] + extra
        r = run_tool("train", args, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[name] = _strip(os.path.join(out, name))
    assert len(runs["w0"]) == 2
    if batched == "true":
        assert runs["w2shm"] == runs["w0"] and runs["w2pipe"] == runs["w0"]
    else:  # per image, the draws are made where the image is loaded: same epochs, other draws
        assert runs["w2shm"] == runs["w2pipe"]
        assert [r["epoch"] for r in runs["w2shm"]] == [1, 2]


def test_a_worker_that_raises_gives_one_line(tmp_path):
    root = tmp_path / "images"
    rng = np.random.RandomState(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype="uint8")).save(str(root / c / ("%d.png" % i)))
    bad = root / "b" / "7.png"
    bad.write_bytes(b"not an image")
    section = ("{name: ImageFolder, root: %s, subset: %%s, val_size: 4, split_seed: 0}" % root)
    args = ["-c", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "configs", "resnet20.yaml"),
            "-o", "Arch.num_classes=2", "-o", "DataLoader.Test=null", "-o", "Global.iterations=null",
            "-o", "Global.epochs=1", "-o", "Global.cpu_processes=1", "-o", "Global.output_dir=%s" % (tmp_path / "o"),
            "-o", "DataLoader.Train.dataset=" + section % "train", "-o", "DataLoader.Eval.dataset=" + section % "val",
            "-o", "DataLoader.*.batch_size=4", "-o", "DataLoader.*.num_workers=2"]
    r = run_tool("train", args, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: cannot read image %s" % bad), r.stderr[-3000:]
    assert "in a DataLoader worker" in errors[0]


def test_small_shared_memory_makes_workers_use_pipes(monkeypatch):
    class Usage(object):
        free = 64 << 20

    monkeypatch.setattr(L.shutil, "disk_usage", lambda path: Usage())
    assert not L.shared_memory_ok()
    Usage.free = 8 << 30
    assert L.shared_memory_ok()

    def missing(path):
        raise OSError("no /dev/shm")

    monkeypatch.setattr(L.shutil, "disk_usage", missing)
    assert L.shared_memory_ok() == (os.name == "nt")


EARLY_STOP = """
import os, sys
import numpy as np, paddle
from cli_helpers import descendants
from ppresvar.data.loader import LoaderErrors

class Ten(paddle.io.Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        return np.full((3, 4, 4), i, "float32"), np.int64(i % 10)

loader = LoaderErrors(paddle.io.DataLoader(Ten(), batch_size=10, num_workers=2, return_list=True))
for take in [int(t) for t in sys.argv[1:]]:
    batches = iter(loader)
    for _ in range(take):
        next(batches)
    running = len(descendants(os.getpid()))
    batches.close()
    print(take, running, len(descendants(os.getpid())), flush=True)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_a_loop_that_stops_early_ends_the_workers(tmp_path):
    """Paddle ends its workers only when an iterator runs out: the trainer's
    loop takes exactly len(loader) batches, and a loop may break. Closing the
    generator ends them (each pass leaked 2 workers before); passes that
    break after one batch, with batches in flight, alternate with full ones
    (the next pass's workers hung before the old iterator was collected)."""
    script = tmp_path / "early.py"
    script.write_text(EARLY_STOP)
    takes = ["4", "1", "4", "1", "1", "4", "1", "4"]
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # cli_helpers
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, tests]))
    r = subprocess.run([sys.executable, str(script)] + takes, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == takes
    assert all(int(running) >= 2 and int(after) == 0 for _, running, after in rows), rows
