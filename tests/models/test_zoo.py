"""Properties every registered model must have."""
import os

import numpy as np
import paddle
import pytest

import ppresvar
from ppresvar.export import to_static

ALL = ppresvar.list_models()
# Models whose natural input is 32x32 (CIFAR stems, RiR), plus ResNet-RS-50 with
# its CIFAR stem; the deep ResNet-RS nets take minutes each to export here.
SMALL = [(n, {}) for n in ALL if not n.startswith("resnetrs")] + [("resnetrs50", {"stem": "cifar"})]
NUM_CLASSES = 7  # not any factory's default


def _x(batch=2, seed=1):
    return paddle.to_tensor(np.random.RandomState(seed).randn(batch, 3, 32, 32).astype("float32"))


@pytest.mark.parametrize("name", ALL)
def test_forward_backward(name):
    model = ppresvar.create_model(name, num_classes=NUM_CLASSES)
    model.train()
    out = model(_x())
    assert out.shape == [2, NUM_CLASSES]
    assert np.isfinite(out.numpy()).all()
    (out * out).mean().backward()
    missing = [p.name for p in model.parameters() if not p.stop_gradient and p.grad is None]
    assert not missing, "no gradient for %s" % missing[:5]
    for p in model.parameters():
        if p.grad is not None:
            assert np.isfinite(p.grad.numpy()).all(), p.name


@pytest.mark.parametrize("name,kw", SMALL, ids=[n for n, _ in SMALL])
def test_eval_is_deterministic_and_jit_roundtrip(name, kw, tmp_path):
    model = ppresvar.create_model(name, num_classes=NUM_CLASSES, **kw)
    model.eval()
    x = _x(3)
    with paddle.no_grad():
        a = model(x).numpy()
        b = model(x).numpy()
    np.testing.assert_array_equal(a, b)
    spec = [paddle.static.InputSpec([None, 3, 32, 32], "float32", "x")]
    path = os.path.join(str(tmp_path), "model")
    paddle.jit.save(to_static(model, spec), path)
    loaded = paddle.jit.load(path)
    loaded.eval()
    with paddle.no_grad():
        c = loaded(x).numpy()
    np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet18_nam", "resnet50_nam"])
def test_nam_pixel_branch_trains_and_exports(name, tmp_path):
    model = ppresvar.create_model(name, nam_spatial=True)
    out = model(_x())
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if not p.stop_gradient)
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, 32, 32], "float32", "x")]
    path = os.path.join(str(tmp_path), "model")
    paddle.jit.save(to_static(model, spec), path)
    with paddle.no_grad():
        np.testing.assert_allclose(paddle.jit.load(path)(_x()).numpy(), model(_x()).numpy(), rtol=1e-5, atol=1e-5)


def test_imagenet_stem_at_224():
    model = ppresvar.create_model("resnet18", stem="imagenet", num_classes=5)
    model.eval()
    x = paddle.randn([1, 3, 224, 224])
    assert model.forward_features(x).shape == [1, 512, 7, 7]
    assert model(x).shape == [1, 5]


def test_resnet_rs_stems_and_widths():
    model = ppresvar.create_model("resnetrs50", num_classes=3)
    model.eval()
    x = paddle.randn([1, 3, 64, 64])
    # deep stem: /2 then the stride-2 conv in place of max-pool: /4; then /8 more
    assert model.forward_features(x).shape == [1, 2048, 2, 2]
    cifar = ppresvar.create_model("resnetrs50", num_classes=3, stem="cifar")
    cifar.eval()
    assert cifar.forward_features(paddle.randn([1, 3, 32, 32])).shape == [1, 2048, 4, 4]


def test_cifar_resnet_is_6n_plus_2_layers_with_option_a():
    from ppresvar.models.resnet import ZeroPadShortcut
    for depth in (20, 32, 44, 56, 110):
        m = ppresvar.create_model("resnet%d" % depth)
        convs = [l for l in m.sublayers() if isinstance(l, paddle.nn.Conv2D)]
        fcs = [l for l in m.sublayers() if isinstance(l, paddle.nn.Linear)]
        assert len(convs) + len(fcs) == depth  # 6n+2 weighted layers, no projection convs
        assert len([l for l in m.sublayers() if isinstance(l, ZeroPadShortcut)]) == 2
        # the paper's stages: 16, 32, 64 filters at 32, 16, 8 pixels
        assert m.forward_features(paddle.randn([1, 3, 32, 32])).shape == [1, 64, 8, 8]
    b = ppresvar.create_model("resnet20", shortcut="B")
    assert len([l for l in b.sublayers() if isinstance(l, paddle.nn.Conv2D)]) == 19 + 2
