"""Issue 4: eager, paddle.jit.load, Paddle Inference with oneDNN on and off,
and onnxruntime compute the same logits (within 1e-4) for every model with a
32x32 input, and the same top-1 classes."""
import numpy as np
import pytest

from ppresvar import export as E

from export_helpers import model_id, models_32

MODELS = models_32()
RUNTIMES = ("jit", "onednn", "no_onednn", "onnx")
ATOL = 1e-4


@pytest.fixture(scope="module", params=MODELS, ids=[model_id(*m) for m in MODELS])
def exported(request, export_cache):
    name, options = request.param
    return export_cache(name, options)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtime_matches_eager(exported, runtime):
    if runtime == "onnx" and not exported.onnx:
        pytest.skip("paddle2onnx/onnxruntime not installed: " + E.ONNX_INSTALL)
    out = E.runtime_logits(exported.dir, exported.x, runtimes=(runtime,))[runtime]
    assert out.shape == exported.ref.shape
    diff = float(np.abs(out - exported.ref).max())
    assert diff <= ATOL, "%s/%s: max |diff| %.3g" % (exported.name, runtime, diff)
    np.testing.assert_array_equal(out.argmax(-1), exported.ref.argmax(-1))


def test_models_list_covers_the_32x32_families():
    names = [m[0] for m in MODELS]
    for n in ("resnet20", "resnet110", "resnet18", "resnet50_nam", "resnet18_dyrelu_c", "resnetrs50"):
        assert n in names
    assert "resnetrs101" not in names
