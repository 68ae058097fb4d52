"""Untrusted files: every tool that reads a damaged archive, image folder,
checkpoint, safetensors file, exported model or input image stops with one
``error:`` line naming the file, and exit code 2 (a ``warning:`` line may
come first: a pickle from outside a run directory). Each case of the table
in docs/faults.md is a case here (the last test checks the two agree)."""
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import paddle
import pytest
from PIL import Image

from cli_helpers import ROOT, cifar_args, tool
from ppresvar.data import write_cifar_archive
from ppresvar.export import META_FILE, SAFETENSORS_FILE, model_files

R20 = os.path.join(ROOT, "configs", "resnet20.yaml")
CASES = {}  # case id -> tools it is run through, filled by the decorators below


def case(kind, *ids):
    for i in ids:
        CASES.setdefault(kind + "/" + i, [])
    return pytest.mark.parametrize("damage", ids)


def subprocess_run(name, args, timeout=300):
    """A tool in its own process (where a damaged file could crash paddle's C++)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", name + ".py")] + list(args), cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout)


@pytest.fixture
def run(capsys):
    """A tool's main() in this process (fast): ``run(name, args)`` ->
    an object with ``returncode`` and ``stderr``."""
    class Result(object):
        pass

    def call(name, args):
        capsys.readouterr()
        r = Result()
        try:
            tool(name).main(list(args))
            r.returncode = 0
        except SystemExit as e:
            r.returncode = e.code
        r.stderr = capsys.readouterr().err
        return r

    return call


def refused(proc, named):
    """Exit 2, one error line naming ``named``, no traceback."""
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error: ")]
    others = [l for l in lines if not l.startswith(("error: ", "warning: ", "backend: "))]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(errors) == 1 and not others, proc.stderr[-3000:]
    assert named in errors[0], errors[0]
    return errors[0]


# ------------------------------------------------------------------ archives

def _damaged_archive(good, damage, folder):
    path = os.path.join(folder, "cifar-10-python.tar.gz")
    blob = open(good, "rb").read()
    if damage == "truncated":
        open(path, "wb").write(blob[:len(blob) // 2])
    elif damage == "garbage":
        open(path, "wb").write(b"\x1f\x8b" + np.random.RandomState(0).bytes(4000))
    elif damage == "not_cifar":
        with tarfile.open(path, "w:gz") as tar:
            data = b"hello"
            info = tarfile.TarInfo("readme.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    elif damage == "wrong_shapes":
        import pickle

        with tarfile.open(path, "w:gz") as tar:
            for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch", "batches.meta"]:
                obj = {b"data": np.zeros((4, 100), "uint8"), b"labels": [0, 1, 2, 3],
                       b"label_names": [b"c%d" % i for i in range(10)]}
                data = pickle.dumps(obj)
                info = tarfile.TarInfo("cifar-10-batches-py/" + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@case("archive", "truncated", "garbage", "not_cifar", "wrong_shapes")
@pytest.mark.parametrize("tool", ["train", "eval"])
def test_archives(run, archive, trained_run, tmp_path, damage, tool):
    bad = _damaged_archive(archive, damage, str(tmp_path))
    if tool == "train":
        args = cifar_args(bad, str(tmp_path / "out"), "x")
    else:
        args = ["-c", R20, "-o", "Global.pretrained_model=%s" % os.path.join(trained_run[0], "checkpoints",
                                                                            "last.pdckpt"),
                "-o", "DataLoader.*.dataset.data_file=%s" % bad]
    refused(run(tool, args), bad)
    assert not os.path.exists(str(tmp_path / "out"))


# ------------------------------------------------------------- image folders

def _tree(root, damage):
    rng = np.random.RandomState(0)
    for c in ["cat", "dog"] + ["c%d" % i for i in range(8)]:
        os.makedirs(os.path.join(root, c))
        for i in range(6 if c in ("cat", "dog") else 1):
            Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype="uint8")).save(os.path.join(root, c, "%d.png" % i))
    bad = os.path.join(root, "dog", "3.png")
    _damage_image(bad, damage)
    return bad


def _damage_image(path, damage):
    """An image file made unreadable: text, cut in half, or empty (None: left as is)."""
    if damage == "not_an_image":
        open(path, "wb").write(b"this is text, not pixels")
    elif damage == "truncated_image":
        blob = open(path, "rb").read()
        open(path, "wb").write(blob[:len(blob) // 2])
    elif damage == "empty_image":
        open(path, "wb").close()


@case("folder", "not_an_image", "truncated_image", "empty_image")
@pytest.mark.parametrize("workers", [0, 2])
def test_image_folders_in_training(run, tmp_path, damage, workers):
    root = str(tmp_path / "images")
    bad = _tree(root, damage)
    section = "{name: ImageFolder, root: %s, subset: %%s, val_size: 4, split_seed: 0}" % root
    args = ["-c", R20, "-o", "Arch.num_classes=10", "-o", "DataLoader.Test=null", "-o", "Global.iterations=null",
            "-o", "Global.epochs=1", "-o", "Global.cpu_processes=1", "-o", "Global.output_dir=%s" % (tmp_path / "o"),
            "-o", "DataLoader.Train.dataset=" + section % "train", "-o", "DataLoader.Eval.dataset=" + section % "val",
            "-o", "DataLoader.*.batch_size=4", "-o", "DataLoader.*.num_workers=%d" % workers]
    refused(run("train", args), bad)


@case("folder", "not_an_image", "truncated_image", "empty_image")
def test_image_folders_in_pack_cifar(run, tmp_path, damage):
    root = str(tmp_path / "tree")
    _tree(os.path.join(root, "train"), None)
    bad = _tree(os.path.join(root, "test"), damage)
    out = str(tmp_path / "a.tar.gz")
    refused(run("pack_cifar", [root, "--out", out]), bad)
    assert not os.path.exists(out)


# --------------------------------------------------------------- checkpoints

def _damaged_checkpoint(run_dir, damage, folder):
    """A copy of a run directory whose last.pdckpt is damaged (inside a run
    directory: the pickle warning does not apply)."""
    copy = os.path.join(folder, "run")
    shutil.copytree(run_dir, copy)
    path = os.path.join(copy, "checkpoints", "last.pdckpt")
    blob = open(path, "rb").read()
    if damage == "truncated":
        open(path, "wb").write(blob[:len(blob) // 2])
    elif damage == "garbage":
        open(path, "wb").write(np.random.RandomState(1).bytes(5000))
    elif damage == "empty":
        open(path, "wb").close()
    elif damage == "not_a_checkpoint":
        paddle.save([1, 2, 3], path)
    elif damage == "other_model":
        paddle.save({"model": {"fc.weight": paddle.zeros([3, 3])}, "epoch": 1, "arch": "resnet32"}, path)
    return path


@case("checkpoint", "truncated", "garbage", "empty", "not_a_checkpoint", "other_model")
@pytest.mark.parametrize("tool", ["train", "eval", "export"])
def test_checkpoints(run, trained_run, tmp_path, damage, tool):
    if tool == "train" and damage == "other_model":
        pytest.skip("resume needs a training state: covered by the not_a_checkpoint case")
    path = _damaged_checkpoint(trained_run[0], damage, str(tmp_path))
    if tool == "train":
        args = ["--resume", os.path.dirname(os.path.dirname(path))]
    elif tool == "eval":
        args = ["-c", R20, "-o", "Global.pretrained_model=%s" % path]
    else:
        args = ["-c", R20, "-o", "Global.pretrained_model=%s" % path, "--output", str(tmp_path / "e")]
    refused(run(tool, args), path)


def test_a_pickle_from_outside_a_run_directory_warns_once(run, trained_run, tmp_path):
    outside = str(tmp_path / "downloaded.pdckpt")
    shutil.copyfile(os.path.join(trained_run[0], "checkpoints", "best.pdckpt"), outside)
    proc = run("eval", ["-o", "Global.pretrained_model=%s" % outside, "--split", "val"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and outside in warnings[0] and "can run code" in warnings[0]
    assert "model.safetensors" in warnings[0]
    inside = run("eval", ["-o", "Global.pretrained_model=%s" % os.path.join(trained_run[0], "checkpoints",
                                                                           "best.pdckpt"), "--split", "val"])
    assert inside.returncode == 0 and "warning:" not in inside.stderr


# ------------------------------------------------- exported models and weights

@pytest.fixture(scope="module")
def export_dir(trained_run, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("export") / "r20")
    proc = subprocess_run("export", ["-o", "Global.pretrained_model=%s" % os.path.join(trained_run[0], "checkpoints",
                                                                           "best.pdckpt"), "--output", out,
                          "--no-check"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("images"))
    rng = np.random.RandomState(2)
    for i in range(3):
        Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype="uint8")).save(os.path.join(folder, "%d.png" % i))
    return folder


def _damaged_export(export_dir, damage, folder):
    copy = os.path.join(folder, "export")
    shutil.copytree(export_dir, copy)
    program, params = model_files(copy)
    target = {"missing_program": program, "truncated_params": params, "garbage_program": program,
              "garbage_preprocess": os.path.join(copy, META_FILE),
              "truncated_safetensors": os.path.join(copy, SAFETENSORS_FILE),
              "garbage_safetensors": os.path.join(copy, SAFETENSORS_FILE)}[damage]
    blob = open(target, "rb").read()
    if damage == "missing_program":
        os.remove(target)
    elif damage.startswith("truncated"):
        open(target, "wb").write(blob[:len(blob) // 2])
    elif damage == "garbage_safetensors":
        open(target, "wb").write(b"\xff" * 8 + b"{not json")
    else:
        open(target, "wb").write(b"{ not json" + np.random.RandomState(3).bytes(200))
    return copy, target


@case("export", "missing_program", "truncated_params", "garbage_program", "garbage_preprocess")
def test_exported_models_in_infer(export_dir, images, tmp_path, damage):
    copy, target = _damaged_export(export_dir, damage, str(tmp_path))
    refused(subprocess_run("infer", ["--model", copy, images, "--backend", "paddle"]), target if damage != "missing_program"
            else copy)


@case("export", "truncated_safetensors", "garbage_safetensors")
@pytest.mark.parametrize("tool", ["infer", "eval"])
def test_safetensors(run, export_dir, images, tmp_path, damage, tool):
    copy, target = _damaged_export(export_dir, damage, str(tmp_path))
    if tool == "infer":
        proc = run("infer", ["--model", copy, images, "--backend", "eager"])
    else:
        proc = run("eval", ["-c", R20, "-o", "Global.pretrained_model=%s" % target])
    refused(proc, target)


# -------------------------------------------------------------- input images

@case("image", "not_an_image", "truncated_image", "empty_image", "no_images")
def test_input_images_in_infer(run, export_dir, images, tmp_path, damage):
    folder = str(tmp_path / "in")
    shutil.copytree(images, folder)
    bad = os.path.join(folder, "1.png")
    if damage != "no_images":
        _damage_image(bad, damage)
    else:
        for f in os.listdir(folder):
            os.remove(os.path.join(folder, f))
        bad = folder
    refused(run("infer", ["--model", export_dir, folder, "--backend", "paddle"]), bad)


def test_every_case_is_in_the_docs_table():
    text = open(os.path.join(ROOT, "docs", "faults.md"), encoding="utf-8").read()
    documented = set(re.findall(r"`((?:archive|folder|checkpoint|export|image)/\w+)`", text))
    assert documented == set(CASES), (sorted(set(CASES) - documented), sorted(documented - set(CASES)))
