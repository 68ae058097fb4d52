"""The export directory: program format by feature, preprocessing, safetensors,
dynamic batch, the model left eager, and clear messages for what is missing."""
import json
import os
import sys

import numpy as np
import pytest

import ppresvar
from ppresvar import export as E
from ppresvar.errors import CheckpointError, UserError

from export_helpers import image_batch


@pytest.fixture(scope="module")
def r20(export_cache):
    return export_cache("resnet20")


def test_files_written(r20):
    files = set(os.listdir(r20.dir))
    assert "inference.pdiparams" in files
    # Paddle 3.x writes the PIR program as JSON, Paddle 2.x a .pdmodel
    assert ("inference.json" in files) != ("inference.pdmodel" in files)
    program, params = E.model_files(r20.dir)
    assert os.path.basename(program) in files and params.endswith(".pdiparams")
    meta = json.load(open(os.path.join(r20.dir, E.META_FILE)))
    assert meta["input_shape"] == [None, 3, 32, 32]
    assert meta["size"] == [32, 32] and meta["channels"] == 3 and meta["model"]["name"] == "resnet20"


def test_model_stays_eager(r20):
    # to_static replaces the converted layer's forward; export converts a wrapper
    assert "forward" not in vars(r20.model)
    assert r20.model.training is False


def test_dynamic_batch(r20):
    pred = E.PaddlePredictor(r20.dir, onednn=False, threads=1)
    for n in (1, 4):
        x = image_batch(n, seed=5)
        np.testing.assert_allclose(pred(x), E.eager_logits(r20.model, x), atol=1e-4)


def test_safetensors_round_trip(r20):
    """Every weight comes back bit for bit; the logits then agree up to the
    summation order of the thread count the reference was computed with."""
    fresh = ppresvar.create_model("resnet20", num_classes=10)
    E.load_safetensors(fresh, r20.paths["safetensors"])
    want = r20.model.state_dict()
    assert sorted(fresh.state_dict()) == sorted(want)
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), want[k].numpy(), err_msg=k)
    np.testing.assert_allclose(E.eager_logits(fresh, r20.x), r20.ref, rtol=1e-5, atol=1e-6)


def test_safetensors_wrong_model(r20):
    with pytest.raises(CheckpointError, match="does not fit"):
        E.load_safetensors(ppresvar.create_model("resnet32"), r20.paths["safetensors"])


def test_missing_export_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match="tools/export.py"):
        E.model_files(str(tmp_path))


def test_missing_onnx_packages_give_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "paddle2onnx", None)   # import fails
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert not E.onnx_available()
    with pytest.raises(E.MissingDependencyError, match="pip install paddle2onnx"):
        E.export_onnx("a.json", "a.pdiparams", str(tmp_path / "a.onnx"))
    with pytest.raises(UserError, match="pip install"):
        E.create_predictor(str(tmp_path), backend="onnx")


def test_unknown_backend(r20):
    with pytest.raises(UserError, match="choose one of"):
        E.create_predictor(r20.dir, backend="tvm")


def test_topk_and_softmax():
    p = E.softmax(np.array([[0.0, 2.0, 1.0]]))
    assert abs(p.sum() - 1) < 1e-6
    top = E.topk(p, 2, ["a", "b", "c"])[0]
    assert [t[1] for t in top] == ["b", "c"]
