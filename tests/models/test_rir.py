"""RiR (Targ et al. 2016, seed 000): parameter counts, the fused convolution,
the paper's degenerate cases, and the seed's defects."""
import math

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppresvar
from ppresvar.flops import count_params
from ppresvar.models.rir import ResNetInit, RiRBlock

EPS = 1e-5  # BatchNorm2D's default epsilon


# ------------------------------------------------------- numpy references

def np_conv(x, w, b, stride, pad):
    """Plain cross-correlation, NCHW input, OIHW kernel."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    ho = (x.shape[2] - kh) // stride + 1
    wo = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def np_bn_train(x, gamma, beta):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma[None, :, None, None] + beta[None, :, None, None]


def relu(x):
    return np.maximum(x, 0)


def npv(p):
    return p.numpy().astype(np.float64)


def randomize(layer, scale=0.3):
    """Random values for every parameter (biases and BN affine included) and
    for BN running statistics, so no term hides behind a zero."""
    for p in layer.parameters():
        p.set_value((np.random.randn(*p.shape) * scale).astype("float32"))
    for m in layer.sublayers():
        if isinstance(m, nn.BatchNorm2D):
            m._variance.set_value(np.abs(m._variance.numpy()) + 0.5)


def zero(*params):
    for p in params:
        p.set_value(np.zeros(p.shape, "float32"))


def streams(cin, n=2, size=8):
    r = paddle.to_tensor(np.random.randn(n, cin, size, size).astype("float32"))
    t = paddle.to_tensor(np.random.randn(n, cin, size, size).astype("float32"))
    return r, t


# ------------------------------------------------------- parameter counts

@pytest.mark.parametrize("name,kw,total,trainable", [
    ("rir18", {}, 9532234, 9524362),                    # the seed's figure, paper wiring
    ("rir18", {"wiring": "seed"}, 9555562, 9547690),    # a projection per stream
    ("rir18", {"fused": False}, 9532234, 9524362),
    ("rir_resnet18", {}, 9574474, 9566602),             # seed 000's ResNet-18
])
def test_parameter_counts_exactly(name, kw, total, trainable):
    # BN running statistics: 2 per BN channel (7,872 for both models).
    with paddle.LazyGuard():  # shapes only
        m = ppresvar.create_model(name, **kw)
    assert count_params(m) == (total, trainable)


def test_fused_and_four_conv_models_share_the_state_dict():
    with paddle.LazyGuard():
        fused = ppresvar.create_model("rir18")
        plain = ppresvar.create_model("rir18", fused=False)
    a, b = fused.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(list(a[k].shape) == list(b[k].shape) for k in a)


@pytest.mark.parametrize("name", ["rir18", "rir_resnet18"])
def test_width_scales_every_channel_and_keeps_the_wiring(name):
    """A narrower net for a reduced budget: the same layers, parameter names
    and kernel sizes, every channel count times the width."""
    with paddle.LazyGuard():
        full = ppresvar.create_model(name).state_dict()
        quarter = ppresvar.create_model(name, width=0.25).state_dict()
    assert list(full) == list(quarter)
    for key in full:
        a, b = list(full[key].shape), list(quarter[key].shape)
        want = [d // 4 if (i < 2 and d > 10) else d for i, d in enumerate(a)]  # 10: the classes, 3: RGB
        assert b == want, key
    out = ppresvar.create_model(name, width=0.25)(paddle.randn([2, 3, 32, 32]))
    assert out.shape == [2, 10]
    with pytest.raises(ValueError, match="width"):
        ppresvar.create_model(name, width=0)


def test_bad_wiring_is_refused():
    with pytest.raises(ValueError, match="wiring"):
        ppresvar.create_model("rir18", wiring="both")


# ------------------------------------------------- fused == four convolutions

@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 6, 2), (3, 5, 1)])
@pytest.mark.parametrize("train", [True, False])
def test_fused_convolution_equals_four_convolutions(cin, cout, stride, train):
    fused = ResNetInit(cin, cout, stride, fused=True)
    plain = ResNetInit(cin, cout, stride, fused=False)
    randomize(fused)
    plain.set_state_dict(fused.state_dict())
    for m in (fused, plain):
        m.train() if train else m.eval()
    r, t = streams(cin)
    outs = []
    for m in (fused, plain):
        rr, tt = r.detach(), t.detach()
        rr.stop_gradient = tt.stop_gradient = False
        y_r, y_t = m(rr, tt)
        ((y_r * y_r).sum() + 0.5 * y_t.sum()).backward()
        grads = {n: p.grad.numpy() for n, p in m.named_parameters() if not p.stop_gradient}
        outs.append((y_r.numpy(), y_t.numpy(), rr.grad.numpy(), tt.grad.numpy(), grads))
    for got, want in zip(outs[0][:4], outs[1][:4]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert sorted(outs[0][4]) == sorted(outs[1][4])
    for n in outs[0][4]:
        np.testing.assert_allclose(outs[0][4][n], outs[1][4][n], rtol=1e-4, atol=1e-5, err_msg=n)
    if train:  # both updated the running statistics alike
        np.testing.assert_allclose(fused.bn_r._mean.numpy(), plain.bn_r._mean.numpy(), atol=1e-6)


def test_fused_model_equals_four_conv_model():
    fused = ppresvar.create_model("rir18")
    plain = ppresvar.create_model("rir18", fused=False)
    plain.set_state_dict(fused.state_dict())
    fused.eval()
    plain.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_allclose(fused(x).numpy(), plain(x).numpy(), rtol=1e-4, atol=1e-4)


# ------------------------------------------ the paper's degenerate cases (sec. 2)

@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 6, 2)])
def test_zero_transient_weights_give_a_residual_layer(cin, cout, stride):
    layer = ResNetInit(cin, cout, stride)
    randomize(layer)
    c = layer.cross
    zero(c.conv_tr.weight, c.conv_tr.bias, c.conv_rt.weight, c.conv_rt.bias,
         c.conv_tt.weight, c.conv_tt.bias)
    layer.train()
    r, t = streams(cin)
    y_r, _ = layer(r, t)
    # relu(bn(conv(r) + shortcut(r))), written out.
    rn = npv(r)
    if layer.shortcut is None:
        short = rn
    else:
        short = np_conv(rn, npv(layer.shortcut.weight), npv(layer.shortcut.bias), stride, 0)
    ref = relu(np_bn_train(np_conv(rn, npv(c.conv_rr.weight), npv(c.conv_rr.bias), stride, 1) + short,
                           npv(layer.bn_r.weight), npv(layer.bn_r.bias)))
    np.testing.assert_allclose(y_r.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_zero_residual_weights_give_a_plain_conv_layer():
    cin, cout, stride = 4, 6, 2
    layer = ResNetInit(cin, cout, stride)
    randomize(layer)
    c = layer.cross
    zero(c.conv_rr.weight, c.conv_rr.bias, c.conv_tr.weight, c.conv_tr.bias,
         c.conv_rt.weight, c.conv_rt.bias, layer.shortcut.weight, layer.shortcut.bias)
    layer.train()
    r, t = streams(cin)
    y_r, y_t = layer(r, t)
    # relu(bn(conv(t))), written out; the residual stream carries nothing.
    ref = relu(np_bn_train(np_conv(npv(t), npv(c.conv_tt.weight), npv(c.conv_tt.bias), stride, 1),
                           npv(layer.bn_t.weight), npv(layer.bn_t.bias)))
    np.testing.assert_allclose(y_t.numpy(), ref, rtol=1e-4, atol=1e-4)
    beta = relu(npv(layer.bn_r.bias))[None, :, None, None]
    np.testing.assert_allclose(y_r.numpy(), np.broadcast_to(beta, y_r.shape), atol=1e-5)


# ------------------------------------------------------- the seed's defects

def _inner(block, r, t):
    return block.layer2(*block.layer1(r, t))


def test_seed_wiring_gives_each_stream_its_own_projection():
    # The seed applied one projection to both streams (the other was unused).
    block = RiRBlock(4, 6, 2, wiring="seed")
    randomize(block)
    block.eval()
    r, t = streams(4)
    out_r, out_t = block(r, t)
    in_r, in_t = _inner(block, r, t)
    pr, pt = block.shortcut_r, block.shortcut_t
    assert pr is not pt and pr.weight.name != pt.weight.name
    want_r = np_conv(npv(r), npv(pr.weight), npv(pr.bias), 2, 0)
    want_t = np_conv(npv(t), npv(pt.weight), npv(pt.bias), 2, 0)
    np.testing.assert_allclose((out_r - in_r).numpy(), want_r, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose((out_t - in_t).numpy(), want_t, rtol=1e-4, atol=1e-4)
    # ... and the transient projection serves the transient stream only.
    pr.weight.set_value(pr.weight.numpy() + 1.0)
    out_r2, out_t2 = block(r, t)
    np.testing.assert_array_equal(out_t2.numpy(), out_t.numpy())
    assert np.abs(out_r2.numpy() - out_r.numpy()).max() > 0.1


@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 6, 2)])
def test_paper_wiring_gives_the_transient_stream_no_outer_shortcut(cin, cout, stride):
    block = RiRBlock(cin, cout, stride)
    randomize(block)
    block.eval()
    r, t = streams(cin)
    out_r, out_t = block(r, t)
    in_r, in_t = _inner(block, r, t)
    np.testing.assert_array_equal(out_t.numpy(), in_t.numpy())
    short = npv(r) if block.shortcut_r is None else np_conv(
        npv(r), npv(block.shortcut_r.weight), npv(block.shortcut_r.bias), stride, 0)
    np.testing.assert_allclose((out_r - in_r).numpy(), short, rtol=1e-4, atol=1e-4)
    assert block.shortcut_t is None


def _std(p):
    return float(np.std(p.numpy()))


def test_conv_weights_are_kaiming_fan_out_initialised():
    m = ppresvar.create_model("rir18")
    # (layer, fan_out, Paddle's default std sqrt(2 / fan_in))
    stem = m.stem_r[0]
    down = m.blocks[2].layer1.cross.conv_rt       # 48 -> 96, stride 2
    proj = m.blocks[2].shortcut_r                 # 1x1, 48 -> 96
    for conv, fan_out, fan_in, tol in [(stem, 48 * 9, 3 * 9, 0.1),
                                       (down, 96 * 9, 48 * 9, 0.03),
                                       (proj, 96, 48, 0.05)]:
        kaiming, default = math.sqrt(2.0 / fan_out), math.sqrt(2.0 / fan_in)
        assert abs(_std(conv.weight) / kaiming - 1) < tol, conv
        assert _std(conv.weight) < 0.75 * default  # not the default init the seed kept
        assert abs(float(conv.weight.mean())) < 0.1 * kaiming
    # The classifier: fan-in mode.
    head = m.head[0]
    assert abs(_std(head.weight) / math.sqrt(2.0 / 384) - 1) < 0.1
    for layer in m.sublayers():
        if isinstance(layer, nn.Conv2D):
            assert not np.any(layer.bias.numpy())
        elif isinstance(layer, nn.BatchNorm2D):
            assert np.all(layer.weight.numpy() == 1) and not np.any(layer.bias.numpy())


# ------------------------------------------------------------ train / export

@pytest.mark.parametrize("name,kw", [("rir18", {}), ("rir18", {"wiring": "seed"}), ("rir_resnet18", {})])
def test_forward_backward_reaches_every_parameter(name, kw):
    m = ppresvar.create_model(name, **kw)
    m.train()
    out = m(paddle.randn([2, 3, 32, 32]))
    assert out.shape == [2, 10] and np.isfinite(out.numpy()).all()
    paddle.nn.functional.cross_entropy(out, paddle.to_tensor([1, 7])).backward()
    missing = [n for n, p in m.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not missing


def test_features_without_classifier():
    m = ppresvar.create_model("rir18", num_classes=0)
    m.eval()
    assert m(paddle.randn([2, 3, 32, 32])).shape == [2, 384]


def test_jit_save_and_load(tmp_path):
    m = ppresvar.create_model("rir18")
    m.eval()
    x = paddle.randn([2, 3, 32, 32])
    want = m(x).numpy()
    spec = [paddle.static.InputSpec([None, 3, 32, 32], "float32", "x")]
    static = paddle.jit.to_static(m, input_spec=spec, full_graph=True)
    prefix = str(tmp_path / "rir18")
    paddle.jit.save(static, prefix)
    loaded = paddle.jit.load(prefix)
    loaded.eval()
    np.testing.assert_allclose(loaded(x).numpy(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cpu_kernels", ["paddle", "onednn"])
def test_fused_model_trains_like_four_conv_model(cpu_kernels):
    """A training step's loss, every parameter gradient and the BN running
    statistics agree between the forms, with paddle's convolutions and with
    the oneDNN kernels."""
    from ppresvar import kernels

    if cpu_kernels == "onednn":
        ok, why = kernels.available()
        if not ok:
            pytest.skip(why)
    with kernels.use(cpu_kernels == "onednn"):
        fused = ppresvar.create_model("rir18")
        plain = ppresvar.create_model("rir18", fused=False)
        randomize(fused)
        plain.set_state_dict(fused.state_dict())
        x = paddle.randn([4, 3, 16, 16])
        y = paddle.to_tensor([1, 7, 3, 0])
        results = []
        for m in (fused, plain):
            m.train()
            loss = paddle.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            results.append((float(loss), {n: p.grad.numpy() for n, p in m.named_parameters()
                                          if not p.stop_gradient}))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    assert sorted(results[0][1]) == sorted(results[1][1])
    for n, g in results[1][1].items():
        scale = max(1.0, float(np.abs(g).max()))
        np.testing.assert_allclose(results[0][1][n], g, rtol=1e-3, atol=1e-4 * scale, err_msg=n)
    stats_f, stats_p = fused.state_dict(), plain.state_dict()
    stats = [k for k in stats_p if k.endswith(("_mean", "_variance"))]
    assert len(stats) == 2 * (2 + 8 * 2 * 2)          # mean, variance of 2 stems + 8 blocks x 2 layers x 2 streams
    for k in stats:
        np.testing.assert_allclose(stats_f[k].numpy(), stats_p[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
