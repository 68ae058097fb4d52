"""tools/pack_cifar.py and ppresvar.data.pack: an image tree packed into the
CIFAR python archive reads back, through the Cifar10/Cifar100 data sets, as
the same pixels and labels; bad trees are refused with one clear line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ppresvar.data.datasets import CIFAR10_CLASSES, CifarData, ImageFolderData, build_dataset
from ppresvar.data.pack import pack_tree, scan_tree
from ppresvar.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_tree(root, classes=CIFAR10_CLASSES, n_train=3, n_test=2, size=32, seed=0):
    """root/{train,test}/<class>/<i>.png of random pixels; returns {path: pixels}."""
    rng = np.random.RandomState(seed)
    pixels = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            os.makedirs(os.path.join(root, split, c))
            for i in range(n):
                a = rng.randint(0, 256, size=(size, size, 3)).astype(np.uint8)
                path = os.path.join(root, split, c, "%04d.png" % i)
                Image.fromarray(a).save(path)
                pixels[path] = a
    return pixels


def test_pack_roundtrip_cifar10(tmp_path):
    pixels = make_tree(str(tmp_path / "tree"))
    (tmp_path / "tree" / "train" / "cat" / ".DS_Store").write_bytes(b"\0junk")  # hidden: skipped
    out = str(tmp_path / "cifar-10-python.tar.gz")
    summary = pack_tree(str(tmp_path / "tree"), out, expect_train=30, expect_test=20, log=lambda m: None)
    assert summary["layout"] == "cifar-10" and summary["images"] == {"train": 30, "test": 20}
    assert summary["classes"] == CIFAR10_CLASSES and len(summary["sha256"]) == 64
    for mode, n in (("train", 30), ("test", 20)):
        ds = CifarData(False, mode, out, False, "DataLoader.Train")
        assert len(ds) == n
        # every image of the split is in the archive once, with its folder's label
        want = {p: a for p, a in pixels.items() if os.sep + mode + os.sep in p}
        got = sorted((ds.labels[i], ds.images[i].tobytes()) for i in range(n))
        expected = sorted((CIFAR10_CLASSES.index(os.path.basename(os.path.dirname(p))), a.tobytes())
                          for p, a in want.items())
        assert got == expected
    # the test split keeps the tree's order; the training split is shuffled with the seed
    test = CifarData(False, "test", out, False, "DataLoader.Test")
    assert test.labels == sorted(test.labels)


def test_same_images_give_the_same_archive_bytes(tmp_path, monkeypatch):
    import time
    make_tree(str(tmp_path / "tree"), n_train=2, n_test=1)
    a, b = str(tmp_path / "a.tar.gz"), str(tmp_path / "b" / "cifar-10-python.tar.gz")
    sha_a = pack_tree(str(tmp_path / "tree"), a, log=lambda m: None)["sha256"]
    monkeypatch.setattr(time, "time", lambda: 2e9)      # packed later, elsewhere, under another name
    sha_b = pack_tree(str(tmp_path / "tree"), b, log=lambda m: None)["sha256"]
    assert sha_a == sha_b
    assert sha_a != pack_tree(str(tmp_path / "tree"), a + "2", seed=1, log=lambda m: None)["sha256"]


def test_pack_roundtrip_cifar100(tmp_path):
    classes = ["c%03d" % i for i in range(100)]
    make_tree(str(tmp_path / "tree"), classes, n_train=1, n_test=1)
    out = str(tmp_path / "cifar-100-python.tar.gz")
    summary = pack_tree(str(tmp_path / "tree"), out, log=lambda m: None)
    assert summary["layout"] == "cifar-100"
    ds = CifarData(True, "train", out, False, "DataLoader.Train")
    assert sorted(ds.labels) == list(range(100))


def test_packed_archive_matches_the_image_folder(tmp_path):
    """The ImageFolder data set on the tree and the Cifar10 data set on its
    archive hold the same (image, label) pairs."""
    make_tree(str(tmp_path / "tree"), n_train=2, n_test=1)
    out = str(tmp_path / "c.tar.gz")
    pack_tree(str(tmp_path / "tree"), out, log=lambda m: None)
    folder = ImageFolderData(str(tmp_path / "tree" / "train"), "DataLoader.Train")
    packed = CifarData(False, "train", out, False, "DataLoader.Train")
    a = sorted((folder.load(i)[1], np.asarray(folder.load(i)[0]).tobytes()) for i in range(len(folder)))
    b = sorted((packed.load(i)[1], np.asarray(packed.load(i)[0]).tobytes()) for i in range(len(packed)))
    assert a == b and folder.class_names == CIFAR10_CLASSES


@pytest.mark.parametrize("damage, message", [
    ("missing_class", "different class folders"),
    ("non_image", "not a readable image"),
    ("truncated", "not a readable image"),
    ("mixed_sizes", "is 40x32, not 32x32"),
    ("empty_class", "is empty"),
    ("no_test", "has no test/ folder"),
    ("stray_file", "outside the class folders"),
    ("nested_folder", "holds a folder"),
    ("wrong_count", "holds 30 images, expected 50000"),
    ("three_classes", "has 3 classes"),
])
def test_bad_trees_are_refused(tmp_path, damage, message):
    root = str(tmp_path / "tree")
    classes = CIFAR10_CLASSES[:3] if damage == "three_classes" else CIFAR10_CLASSES
    make_tree(root, classes)
    join = os.path.join
    if damage == "missing_class":
        for f in os.listdir(join(root, "test", "dog")):
            os.remove(join(root, "test", "dog", f))
        os.rmdir(join(root, "test", "dog"))
    elif damage == "non_image":
        open(join(root, "train", "cat", "notes.txt"), "w").write("not an image")
    elif damage == "truncated":
        path = join(root, "test", "cat", "0000.png")
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    elif damage == "mixed_sizes":
        Image.new("RGB", (40, 32)).save(join(root, "train", "bird", "big.png"))
    elif damage == "empty_class":
        for f in os.listdir(join(root, "train", "frog")):
            os.remove(join(root, "train", "frog", f))
    elif damage == "no_test":
        os.rename(join(root, "test"), join(root, "testing"))
    elif damage == "stray_file":
        open(join(root, "train", "README"), "w").write("x")
    elif damage == "nested_folder":
        os.makedirs(join(root, "train", "cat", "more"))
    out = str(tmp_path / "c.tar.gz")
    with pytest.raises(DataError, match=message):
        pack_tree(root, out, expect_train=50000 if damage == "wrong_count" else None, log=lambda m: None)
    assert not os.path.exists(out) and not os.path.exists(out + ".part")  # nothing half-written is left


def test_tool_writes_archive_and_summary_and_refuses_to_overwrite(tmp_path):
    make_tree(str(tmp_path / "tree"), n_train=1, n_test=1)
    out = str(tmp_path / "a.tar.gz")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "pack_cifar.py"), str(tmp_path / "tree"), "-o", out]
    r = subprocess.run(cmd + ["--expect-train", "10", "--expect-test", "10"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "10 train, 10 test images" in r.stdout and "sha256 " in r.stdout
    assert json.load(open(out + ".json"))["images"] == {"train": 10, "test": 10}
    before = open(out, "rb").read()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and open(out, "rb").read() == before
    r = subprocess.run(cmd + ["--force", "--expect-train", "11"], capture_output=True, text=True)
    assert r.returncode == 2 and "expected 11" in r.stderr and open(out, "rb").read() == before


def test_image_folder_splits_with_different_classes_are_refused(tmp_path):
    """Labels are indices into the sorted class folders: a test folder that
    lacks a class would shift every later label, so evaluation refuses it."""
    from ppresvar.engine.config import validate, load_config
    from ppresvar.engine.evaluator import evaluate_config
    from ppresvar.engine.builder import build_model
    from ppresvar.engine.checkpoint import save_checkpoints

    make_tree(str(tmp_path / "tree"), CIFAR10_CLASSES[:3], n_train=2, n_test=1, size=8)
    import shutil
    shutil.rmtree(str(tmp_path / "tree" / "test" / "bird"))
    cfg = load_config(os.path.join(ROOT, "configs", "demo_digits.yaml"), [
        "DataLoader.Train.dataset={name: ImageFolder, root: %s}" % (tmp_path / "tree" / "train"),
        "DataLoader.Eval.dataset={name: ImageFolder, root: %s}" % (tmp_path / "tree" / "train"),
        "DataLoader.Test.dataset={name: ImageFolder, root: %s}" % (tmp_path / "tree" / "test"),
        "Arch.num_classes=3"])
    ckpt = str(tmp_path / "w.pdckpt")
    save_checkpoints([ckpt], {"model": build_model(cfg).state_dict()})
    with pytest.raises(DataError, match="different classes.*bird"):
        evaluate_config(cfg, "test", ckpt)
    assert scan_tree  # the packer refuses the same tree: test_bad_trees_are_refused[missing_class]
