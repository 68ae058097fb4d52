"""Loader workers on CPU, end to end through tools/train.py: 2 workers train
exactly as the in-process loader does (shared memory or pipes), a worker
that raises gives one line and no hang, and a small /dev/shm makes the
workers use pipes."""
import os

import pytest
from PIL import Image
import numpy as np

from cli_helpers import cifar_args, run_tool
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
