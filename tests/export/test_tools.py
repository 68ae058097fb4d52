"""tools/export.py (config + checkpoint) and tools/infer.py (image files):
infer's top-1 on PNG/JPEG files equals eager evaluation of the same images
through the evaluation preprocessing."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from ppresvar import export as E
from ppresvar.data import eval_transform, write_cifar_archive
from ppresvar.engine.builder import build_model
from ppresvar.engine.config import load_config

from export_helpers import calibrate_bn, image_batch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]

CONFIG = """
Global: {output_dir: %(out)s, seed: 0}
Arch: {name: resnet20}
DataLoader:
  Test:
    dataset: {name: Cifar10, mode: test, data_file: %(archive)s, download: false}
    transforms:
      - NormalizeImage: {mean: %(mean)s, std: %(std)s}
    batch_size: 8
"""


def _run(tool, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool)] + list(args),
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def _images(folder):
    """PNG and JPEG files of varied content (a JPEG changes pixels: both
    sides of the comparison read the same file)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:32, 0:32]
    paths = []
    for i in range(6):
        base = np.stack([(xx * (i + 1) * 8) % 256, (yy * (7 - i) * 6) % 256, ((xx + yy) * 4 * i) % 256], -1)
        img = np.clip(base + rng.randint(0, 60, (32, 32, 3)), 0, 255).astype("uint8")
        ext = "png" if i % 2 == 0 else "jpg"
        path = os.path.join(folder, "img%d.%s" % (i, ext))
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tools")
    archive = str(tmp / "cifar-10-python.tar.gz")
    write_cifar_archive(archive, num_train=10, num_test=10)
    cfg_path = str(tmp / "r20.yaml")
    with open(cfg_path, "w") as f:
        f.write(CONFIG % {"out": str(tmp / "out"), "archive": archive, "mean": MEAN, "std": STD})
    cfg = load_config(cfg_path)
    paddle.seed(0)
    model = build_model(cfg)
    calibrate_bn(model, image_batch(8, seed=1))
    ckpt = str(tmp / "weights.pdparams")
    paddle.save(model.state_dict(), ckpt)
    out = str(tmp / "export")
    r = _run("export.py", "-c", cfg_path, "-o", "Global.pretrained_model=" + ckpt, "--output", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"cfg": cfg, "model": model, "dir": out, "stdout": r.stdout, "tmp": tmp}


def test_export_tool_writes_and_checks(exported):
    program, params = E.model_files(exported["dir"])
    assert os.path.isfile(program) and os.path.isfile(params)
    assert "check onednn" in exported["stdout"] and "same top-1: yes" in exported["stdout"]
    meta = E.load_meta(exported["dir"])
    assert meta["size"] == [32, 32] and meta["class_names"][0] == "airplane"
    np.testing.assert_allclose(meta["mean"], MEAN, rtol=1e-6)
    # the saved pipeline is the config's eval pipeline
    assert meta["transforms"] == exported["cfg"]["DataLoader"]["Test"]["transforms"]


@pytest.mark.parametrize("extra", [["--backend", "paddle"], ["--backend", "paddle", "--onednn", "off", "--threads", "1"],
                                   ["--backend", "onnx"], ["--backend", "eager"]],
                         ids=["onednn", "no_onednn", "onnx", "eager_safetensors"])
def test_infer_top1_equals_eager_eval(exported, extra):
    model_dir = exported["dir"]
    if "onnx" in extra:
        if not E.onnx_available():
            pytest.skip("paddle2onnx/onnxruntime not installed")
        if not os.path.isfile(os.path.join(model_dir, E.ONNX_FILE)):
            E.export_onnx(*E.model_files(model_dir), os.path.join(model_dir, E.ONNX_FILE))
    folder = str(exported["tmp"] / "images")
    paths = _images(folder)
    r = _run("infer.py", "--model", model_dir, folder, "--json", "--topk", "3", "--batch-size", "4", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    got = {json.loads(line)["file"]: json.loads(line)["top"] for line in r.stdout.splitlines()
           if line.startswith("{")}
    assert sorted(got) == sorted(paths)
    # eager evaluation: the data package's eval transform on the image as the data sets give it
    transform = eval_transform(exported["cfg"])
    x = np.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    probs = E.softmax(E.eager_logits(exported["model"], x))
    for p, row in zip(paths, probs):
        top = got[p]
        assert len(top) == 3
        assert top[0]["index"] == int(row.argmax())
        assert top[0]["label"] == E.load_meta(model_dir)["class_names"][int(row.argmax())]
        assert abs(top[0]["prob"] - float(row.max())) < 1e-4


def test_infer_errors_are_one_line(tmp_path):
    r = _run("infer.py", "--model", str(tmp_path), str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "tools/export.py" in r.stderr


def test_export_without_weights_is_a_user_error(exported, tmp_path):
    cfg_path = str(exported["tmp"] / "r20.yaml")
    r = _run("export.py", "-c", cfg_path, "--output", str(tmp_path / "x"))
    assert r.returncode == 2 and "pretrained_model" in r.stderr


def test_auto_backend(exported, monkeypatch):
    d = exported["dir"]
    has_onnx = os.path.isfile(os.path.join(d, E.ONNX_FILE))
    expect = "onnx" if has_onnx and E.onnx_available() else "paddle"
    assert E.resolve_backend(d, "auto") == expect
    assert E.resolve_backend(d, "auto", device="gpu") == "paddle"
    assert E.resolve_backend(d, "paddle") == "paddle"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert E.resolve_backend(d, "auto") == "paddle"


def test_shared_weights_as_safetensors_load_without_pickle(exported):
    """tools/eval.py and ppresvar.load_weights read model.safetensors (what
    tools/export.py writes to share weights) to the same figures as the
    pickle checkpoint; only the pickle, from outside a run directory, gets
    the warning that loading it can run code."""
    import ppresvar

    cfg_path = str(exported["tmp"] / "r20.yaml")
    shared = os.path.join(exported["dir"], E.SAFETENSORS_FILE)
    pickled = str(exported["tmp"] / "weights.pdparams")
    a = _run("eval.py", "-c", cfg_path, "-o", "Global.pretrained_model=" + shared)
    b = _run("eval.py", "-c", cfg_path, "-o", "Global.pretrained_model=" + pickled)
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    ra, rb = json.loads(a.stdout.splitlines()[-1]), json.loads(b.stdout.splitlines()[-1])
    assert (ra["top1"], ra["loss"]) == (rb["top1"], rb["loss"])
    assert "can run code" not in a.stderr
    warnings = [l for l in b.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and pickled in warnings[0] and "can run code" in warnings[0]
    model = ppresvar.create_model("resnet20", num_classes=10)
    ppresvar.load_weights(model, shared)
    x = image_batch(4, seed=3)
    np.testing.assert_array_equal(E.eager_logits(model, x), E.eager_logits(exported["model"], x))
