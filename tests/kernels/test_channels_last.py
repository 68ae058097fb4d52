"""Channels-last (NHWC) training: every kernel's NHWC variant and every
layer's NHWC path against the NCHW formulas, which networks run
channels-last, and training that matches paddle's NCHW ops (ppresvar.kernels)."""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppresvar
from ppresvar import kernels
from ppresvar.layers.dyrelu import DyReLU
from ppresvar.layers.nam import NAMChannel
from ppresvar.layers.norm import BatchNorm2D, norm_act
from ppresvar.models.resnet import ZeroPadShortcut
from test_conv import GRID, _grid_inputs, _train_losses
from test_norm import SHAPES, _bn_inputs, _bn_reference, _nam_gate_reference, _rel


def nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


def nchw(a):
    return np.asarray(a).transpose(0, 3, 1, 2)


def _in_region(fn, *args, use=True):
    """``fn(*args)`` inside ``kernels.use(use)`` and a channels-last region."""
    with kernels.use(use), kernels.channels_last():
        return fn(*args)


@pytest.mark.parametrize("n,cin,cout,size,k,stride,pad,bias", GRID)
def test_conv_nhwc_matches_paddle(ops, n, cin, cout, size, k, stride, pad, bias):
    x_np, w_np, b_np = _grid_inputs(n, cin, cout, size, k, bias)
    results = []
    for layout in ("NHWC", "NCHW"):  # the kernel on NHWC, then paddle's NCHW convolution
        x = paddle.to_tensor(nhwc(x_np) if layout == "NHWC" else x_np, stop_gradient=False)
        w = paddle.to_tensor(w_np, stop_gradient=False)
        b = paddle.to_tensor(b_np, stop_gradient=False) if bias else None
        if layout == "NHWC":
            y = _in_region(kernels.conv2d, x, w, b, stride, pad)
        else:
            y = F.conv2d(x, w, b, stride=stride, padding=pad)
        shape = [y.shape[0], y.shape[3], y.shape[1], y.shape[2]] if layout == "NHWC" else y.shape
        g = np.random.RandomState(1).randn(*shape).astype("float32")  # the same gradient, NCHW
        grads = paddle.grad([y], [x, w] + ([b] if bias else []), [paddle.to_tensor(nhwc(g) if layout == "NHWC" else g)])
        out = [y.numpy()] + [t.numpy() for t in grads]
        results.append([nchw(out[0]), nchw(out[1])] + out[2:] if layout == "NHWC" else out)
    ours, ref = results
    assert ours[0].shape == ref[0].shape
    for a, b in zip(ours, ref):
        assert _rel(a, b) < 1e-4


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("use", [True, False])  # the NHWC kernel, then the layer's NHWC fallback (paddle's op)
def test_batch_norm_nhwc_matches_formula(ops, shape, relu, residual, use):
    x_np, r_np, g_np, scale_np, bias_np = _bn_inputs(shape, residual)
    want = _bn_reference(x_np, scale_np, bias_np, r_np, relu, g_np)
    bn = BatchNorm2D(shape[1], momentum=0.8)
    bn.weight.set_value(paddle.to_tensor(scale_np))
    bn.bias.set_value(paddle.to_tensor(bias_np))
    x = paddle.to_tensor(nhwc(x_np), stop_gradient=False)
    r = paddle.to_tensor(nhwc(r_np), stop_gradient=False) if residual else None
    act = nn.ReLU() if relu else nn.Identity()
    y = _in_region(norm_act, bn, act, x, r, use=use)
    inputs = [x, bn.weight, bn.bias] + ([r] if residual else [])
    grads = [t.numpy() for t in paddle.grad([y], inputs, [paddle.to_tensor(nhwc(g_np))])]
    assert _rel(nchw(y.numpy()), want[0]) < 1e-5
    assert _rel(nchw(grads[0]), want[3]) < 1e-4
    assert _rel(grads[1], want[4]) < 1e-4 and _rel(grads[2], want[5]) < 1e-4
    if residual:
        assert _rel(nchw(grads[3]), want[6]) < 1e-4
    assert _rel(bn._mean.numpy(), 0.2 * want[1]) < 1e-5
    assert _rel(bn._variance.numpy(), 0.8 + 0.2 * want[2]) < 1e-5


def test_batch_norm_nhwc_does_not_depend_on_the_thread_count(ops):
    """NHWC sums run in fixed runs of rows: the same bits on 1 and 2 threads."""
    from ppresvar import runtime

    rs = np.random.RandomState(0)
    x_np = rs.randn(8, 9, 9, 24).astype("float32")  # 648 rows: not a multiple of the run length
    outs = []
    before = runtime.gomp_threads()
    try:
        for threads in (1, 2, 4):
            runtime.set_cpu_threads(threads)
            x = paddle.to_tensor(x_np, stop_gradient=False)
            bn = BatchNorm2D(24)
            y = _in_region(norm_act, bn, nn.ReLU(), x)
            (dx,) = paddle.grad([y], [x], [paddle.to_tensor(x_np)])
            outs.append((y.numpy(), dx.numpy(), bn._variance.numpy()))
    finally:
        runtime.set_cpu_threads(before)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape,stride,cout", [((2, 16, 32, 32), 2, 32), ((3, 5, 7, 9), 2, 8),
                                               ((1, 4, 6, 6), 1, 4), ((2, 3, 5, 5), 3, 6)])
@pytest.mark.parametrize("use", [True, False])
def test_shortcut_a_nhwc(ops, shape, stride, cout, use):
    x_np = np.random.RandomState(0).randn(*shape).astype("float32")
    pad = cout - shape[1]
    want = np.concatenate([x_np[:, :, ::stride, ::stride],
                           np.zeros((shape[0], pad) + x_np[:, :, ::stride, ::stride].shape[2:], "float32")], 1)
    x = paddle.to_tensor(nhwc(x_np), stop_gradient=False)
    y = _in_region(ZeroPadShortcut(shape[1], cout, stride), x, use=use)
    np.testing.assert_array_equal(nchw(y.numpy()), want)
    g = np.random.RandomState(1).randn(*want.shape).astype("float32")
    (dx,) = paddle.grad([y], [x], [paddle.to_tensor(nhwc(g))])
    want_dx = np.zeros_like(x_np)
    want_dx[:, :, ::stride, ::stride] = g[:, :shape[1]]
    np.testing.assert_array_equal(nchw(dx.numpy()), want_dx)


@pytest.mark.parametrize("mode", ["A", "B", "C"])
@pytest.mark.parametrize("use", [True, False])  # the NHWC kernel, then the layer's paddle ops on NHWC
@pytest.mark.parametrize("k", [2, 3])
def test_dyrelu_nhwc_matches_nchw(ops, mode, use, k):
    paddle.seed(3)
    layer = DyReLU(16, mode=mode, reduction=4, init="random", k=k)
    rs = np.random.RandomState(0)
    x_np, g_np = rs.randn(3, 16, 5, 7).astype("float32"), rs.randn(3, 16, 5, 7).astype("float32")
    params = [p for p in layer.parameters() if not p.stop_gradient]
    results = []
    for region in (True, False):
        x = paddle.to_tensor(nhwc(x_np) if region else x_np, stop_gradient=False)
        if region:
            y = _in_region(layer, x, use=use)
        else:
            y = layer(x)  # paddle's ops, NCHW
        grads = paddle.grad([y], [x] + params, [paddle.to_tensor(nhwc(g_np) if region else g_np)])
        out = [y.numpy()] + [t.numpy() for t in grads]
        results.append([nchw(out[0]), nchw(out[1])] + out[2:] if region else out)
    ours, ref = results
    for a, b, name in zip(ours, ref, ["y", "x"] + [p.name for p in params]):
        if mode == "C" and b is ref[-1]:  # the spatial conv's bias: softmax ignores it, its gradient is rounding
            assert np.abs(a).max() < 1e-4 and np.abs(b).max() < 1e-4
            continue
        assert _rel(a, b) < 1e-4, name


@pytest.mark.parametrize("mode", ["A", "C"])
def test_dyrelu_nhwc_from_relu_start_is_relu(ops, mode):
    """A fresh layer (``init='relu'``) is ReLU in a channels-last region too,
    its gradient included (at 0 the first line, slope 1, takes it)."""
    layer = DyReLU(8, mode=mode, reduction=4)
    x_np = np.random.RandomState(4).randn(2, 8, 5, 6).astype("float32")
    x_np[0, :, 0, 0] = 0.0
    x = paddle.to_tensor(nhwc(x_np), stop_gradient=False)
    y = _in_region(layer, x)
    (dx,) = paddle.grad([y], [x], [paddle.ones_like(y)])
    np.testing.assert_array_equal(nchw(y.numpy()), np.maximum(x_np, 0.0))
    np.testing.assert_array_equal(nchw(dx.numpy()), (x_np >= 0).astype("float32"))


@pytest.mark.parametrize("use", [True, False])
def test_nam_gate_nhwc_matches_formula(ops, use):
    rs = np.random.RandomState(5)
    shape = (3, 6, 5, 7)
    z_np, x_np, g_np = (rs.randn(*shape).astype("float32") for _ in range(3))
    w_np = rs.rand(6).astype("float32")
    want = _nam_gate_reference(z_np, w_np, x_np, g_np)
    z, x = paddle.to_tensor(nhwc(z_np), stop_gradient=False), paddle.to_tensor(nhwc(x_np), stop_gradient=False)
    w = paddle.to_tensor(w_np, stop_gradient=False)

    def gate(z, w, x):
        fused = kernels.nam_gate(z, w, x)
        return fused if fused is not None else F.sigmoid(z * w.reshape([1, 1, 1, -1])) * x

    y = _in_region(gate, z, w, x, use=use)
    dz, dw, dx = paddle.grad([y], [z, w, x], [paddle.to_tensor(nhwc(g_np))])
    assert _rel(nchw(y.numpy()), want[0]) < 1e-5
    assert _rel(nchw(dz.numpy()), want[1]) < 1e-4
    assert _rel(dw.numpy(), want[2]) < 1e-4
    assert _rel(nchw(dx.numpy()), want[3]) < 1e-4


def test_nam_channel_layer_nhwc(ops):
    paddle.seed(0)
    layer = NAMChannel(6)
    x_np = np.random.RandomState(2).randn(4, 6, 5, 5).astype("float32")
    x = paddle.to_tensor(nhwc(x_np))
    a = nchw(_in_region(layer, x).numpy())
    b = layer(paddle.to_tensor(x_np)).numpy()  # paddle's ops, NCHW
    assert _rel(a, b) < 1e-5


@pytest.mark.parametrize("name,options,ready", [
    ("resnet20", {}, True), ("resnet18", {}, True), ("resnet50", {}, True),
    ("resnet18_nam", {}, True), ("resnet18_nam", {"nam_spatial": True}, False),
    ("resnet18_dyrelu_a", {}, True), ("resnet18_dyrelu_c", {}, True),
    ("resnet18", {"stem": "imagenet"}, False),      # max-pool in the stem
    ("resnetrs50", {"stem": "cifar"}, False),      # squeeze-excitation, average-pool shortcuts
    ("rir18", {}, True), ("rir18", {"fused": False}, True), ("rir_resnet18", {}, True),
])
def test_which_networks_run_channels_last(ops, monkeypatch, name, options, ready):
    model = ppresvar.create_model(name, num_classes=10, **options)
    assert model.channels_last_ready() is ready
    opened = []
    real = kernels.channels_last

    def spy():
        opened.append(1)
        return real()

    monkeypatch.setattr(kernels, "channels_last", spy)
    x = paddle.randn([2, 3, 32, 32])
    with kernels.use(True):
        out = model(x)
    assert out.shape == [2, 10]
    assert bool(opened) is ready
    opened.clear()
    with kernels.use(True, channels_last=False):  # Global.cpu_channels_last: false
        model(x)
    model.eval()
    with kernels.use(True):  # evaluation stays NCHW
        model(x)
    assert not opened


def test_a_custom_layer_keeps_a_network_nchw(ops):
    model = ppresvar.create_model("resnet20", act_layer=lambda c: nn.LeakyReLU(0.1))
    assert not model.channels_last_ready()
    assert ppresvar.create_model("rir18", wiring="seed").channels_last_ready()


def test_fifty_training_steps_channels_last_match_paddle(ops, monkeypatch):
    """The 50-step smooth ResNet-20 run of test_conv.py, channels-last inside
    (the default) against paddle's NCHW ops, and against the NCHW kernels."""
    opened = []
    real = kernels.channels_last
    monkeypatch.setattr(kernels, "channels_last", lambda: opened.append(1) or real())
    ours, _ = _train_losses(True)
    assert len(opened) == 50
    monkeypatch.setattr(kernels, "channels_last", real)
    ref, _ = _train_losses(False)
    assert ours[-1] < 0.5 * ours[0]
    assert np.abs(ours - ref).max() < 1e-3, np.abs(ours - ref).max()


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 16, 32, 32), (2, 70, 1, 3)])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_channel_mean_matches_formula(ops, shape, layout):
    """The global average pool kernel (DyReLU's coefficient input) against
    numpy in float64: the mean and its gradient, dy / (H*W) everywhere."""
    rs = np.random.RandomState(sum(shape))
    x_np = rs.randn(*shape).astype("float32") + 3.0
    g_np = rs.randn(shape[0], shape[1]).astype("float32")
    x = paddle.to_tensor(nhwc(x_np) if layout == "NHWC" else x_np, stop_gradient=False)
    if layout == "NHWC":
        y = _in_region(kernels.channel_mean, x)
    else:
        with kernels.use(True):
            y = kernels.channel_mean(x)
    (dx,) = paddle.grad([y], [x], [paddle.to_tensor(g_np)])
    dx = nchw(dx.numpy()) if layout == "NHWC" else dx.numpy()
    assert _rel(y.numpy(), x_np.astype("float64").mean(axis=(2, 3))) < 1e-6
    np.testing.assert_allclose(dx, np.broadcast_to(g_np[:, :, None, None] / (shape[2] * shape[3]), shape),
                               rtol=1e-6, atol=0)
    assert kernels.channel_mean(x) is None  # outside use(): the caller's pool


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("wiring,stride", [("paper", 2), ("seed", 2), ("paper", 1)])
def test_rir_block_nhwc_matches_nchw(ops, fused, wiring, stride):
    """An RiR block (two generalized residual layers, the fused cross
    convolution or the four, projections where the stride changes) in a
    channels-last region against the same block on NCHW with paddle's ops."""
    from ppresvar.models.rir import RiRBlock

    paddle.seed(1)
    block = RiRBlock(6, 6 if stride == 1 else 10, stride, wiring, fused)
    rs = np.random.RandomState(2)
    r_np, t_np = rs.randn(3, 6, 9, 9).astype("float32"), rs.randn(3, 6, 9, 9).astype("float32")
    params = [p for p in block.parameters() if not p.stop_gradient]
    results = []
    for region in (True, False):
        T = nhwc if region else (lambda a: a)
        r = paddle.to_tensor(T(r_np), stop_gradient=False)
        t = paddle.to_tensor(T(t_np), stop_gradient=False)
        y_r, y_t = _in_region(block, r, t) if region else block(r, t)
        shape = [y_r.shape[0], y_r.shape[3], y_r.shape[1], y_r.shape[2]] if region else y_r.shape
        g = [np.random.RandomState(s).randn(*shape).astype("float32") for s in (3, 4)]
        grads = paddle.grad([y_r, y_t], [r, t] + params, [paddle.to_tensor(T(a)) for a in g])
        out = [y_r.numpy(), y_t.numpy()] + [a.numpy() for a in grads]
        results.append([nchw(a) for a in out[:4]] + out[4:] if region else out)
    for a, b in zip(*results):
        if np.abs(b).max() < 1e-5:  # a conv bias a batch norm follows: its gradient is 0 up to rounding
            assert np.abs(a).max() < 1e-5
        else:
            assert _rel(a, b) < 1e-4
