"""The multi-threaded batch-norm (+ addition, + ReLU), Dynamic ReLU, NAM
gate and addition + ReLU kernels against plain numpy formulas and paddle's
ops (ppresvar.kernels)."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppresvar import kernels, runtime
from ppresvar.layers.dyrelu import DyReLU
from ppresvar.layers.nam import NAMChannel
from ppresvar.layers.norm import BatchNorm2D, norm_act
from test_conv import _train_losses


def _rel(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def _bn_reference(x, scale, bias, res, relu, g, eps=1e-5):
    """Training-mode batch norm in float64, written from its formulas:
    returns y, the biased batch variance and mean, and the gradients of
    sum(y * g) by x, scale, bias and the residual."""
    x, g = x.astype("float64"), g.astype("float64")
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    s, b = scale[None, :, None, None], bias[None, :, None, None]
    z = s * xhat + b + (res if res is not None else 0.0)
    y = np.maximum(z, 0.0) if relu else z
    gz = g * (z > 0) if relu else g
    dscale = (gz * xhat).sum(axis=axes)
    dbias = gz.sum(axis=axes)
    dx = s / np.sqrt(var + eps) / m * (m * gz - dbias[None, :, None, None] - xhat * dscale[None, :, None, None])
    return y, mean.reshape(-1), var.reshape(-1), dx, dscale, dbias, gz


SHAPES = [(4, 3, 5, 7), (1, 2, 3, 3), (3, 16, 8, 8), (2, 5, 1, 9)]


def _bn_inputs(shape, residual):
    """NCHW input, residual (or None), output gradient, scale and bias of a
    batch-norm test, seeded by the shape."""
    rs = np.random.RandomState(sum(shape))
    x_np = (rs.randn(*shape) * 2 + 0.5).astype("float32")
    r_np = rs.randn(*shape).astype("float32") if residual else None
    g_np = rs.randn(*shape).astype("float32")
    scale_np = (rs.rand(shape[1]) + 0.5).astype("float32")
    bias_np = rs.randn(shape[1]).astype("float32")
    return x_np, r_np, g_np, scale_np, bias_np


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_batch_norm_matches_formula_and_paddle(ops, shape, relu, residual):
    x_np, r_np, g_np, scale_np, bias_np = _bn_inputs(shape, residual)
    want = _bn_reference(x_np, scale_np, bias_np, r_np, relu, g_np)
    act = paddle.nn.ReLU() if relu else paddle.nn.Identity()
    for use in (True, False):  # the kernels, then paddle's ops: both against the formula
        bn = BatchNorm2D(shape[1], momentum=0.8)
        bn.weight.set_value(paddle.to_tensor(scale_np))
        bn.bias.set_value(paddle.to_tensor(bias_np))
        x = paddle.to_tensor(x_np, stop_gradient=False)
        r = paddle.to_tensor(r_np, stop_gradient=False) if residual else None
        with kernels.use(use):
            y = norm_act(bn, act, x, r)
        inputs = [x, bn.weight, bn.bias] + ([r] if residual else [])
        grads = [t.numpy() for t in paddle.grad([y], inputs, [paddle.to_tensor(g_np)])]
        assert _rel(y.numpy(), want[0]) < 1e-5
        for got, ref in zip(grads, [want[3], want[4], want[5]] + ([want[6]] if residual else [])):
            assert _rel(got, ref) < 1e-4
        # running statistics: m * running + (1 - m) * batch, the biased variance
        assert _rel(bn._mean.numpy(), 0.2 * want[1]) < 1e-5
        assert _rel(bn._variance.numpy(), 0.8 + 0.2 * want[2]) < 1e-5


def test_batch_norm_finite_differences(ops):
    """Central differences of sum(relu(bn(x) + r) * g) in float64 on the
    float32 kernel's outputs, at points away from the ReLU's kink."""
    rs = np.random.RandomState(3)
    x = rs.randn(2, 3, 3, 4).astype("float32")
    r = rs.randn(2, 3, 3, 4).astype("float32")
    g = rs.randn(2, 3, 3, 4).astype("float32")
    scale, bias = np.array([1.5, 0.7, 1.1], "float32"), np.array([0.1, -0.2, 0.3], "float32")

    def run(xv, sv, bv, rv, grad=False):
        bn = BatchNorm2D(3)
        bn.weight.set_value(paddle.to_tensor(sv))
        bn.bias.set_value(paddle.to_tensor(bv))
        xt = paddle.to_tensor(xv, stop_gradient=False)
        rt = paddle.to_tensor(rv, stop_gradient=False)
        with kernels.use(True):
            y = kernels.batch_norm(xt, bn, relu=True, residual=rt)
        if not grad:
            return float((y.numpy().astype("float64") * g).sum()), y.numpy()
        return [t.numpy() for t in paddle.grad([y], [xt, bn.weight, bn.bias, rt], [paddle.to_tensor(g)])]

    grads = run(x, scale, bias, r, grad=True)
    _, y0 = run(x, scale, bias, r)
    h = 1e-2
    checked = 0
    for which, arr in enumerate((x, scale, bias, r)):
        flat = arr.reshape(-1)
        for i in rs.choice(flat.size, min(5, flat.size), replace=False):
            args = [a.copy() for a in (x, scale, bias, r)]
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which].reshape(-1)[i] += h
            minus[which].reshape(-1)[i] -= h
            (lp, yp), (lm, ym) = run(*plus), run(*minus)
            if ((yp > 0) != (ym > 0)).any():
                continue  # crossed the kink
            numeric = (lp - lm) / (2 * h)
            assert abs(numeric - grads[which].reshape(-1)[i]) < 2e-2 * max(1.0, abs(numeric))
            checked += 1
    assert checked >= 12


def test_batch_norm_only_in_training_inside_use(ops):
    bn = BatchNorm2D(4)
    x = paddle.randn([2, 4, 3, 3])
    assert kernels.batch_norm(x, bn) is None  # outside use
    with kernels.use(True):
        assert kernels.batch_norm(x, bn) is not None
        bn.eval()
        assert kernels.batch_norm(x, bn) is None  # evaluation: paddle's op, running statistics
        bn.train()
        assert kernels.batch_norm(x.astype("float64"), bn) is None
        assert kernels.batch_norm(x, bn, residual=paddle.randn([2, 4, 3, 1])) is None


@pytest.mark.parametrize("mode", ["A", "B", "C"])
@pytest.mark.parametrize("shape,k", [((3, 8, 5, 7), 2), ((1, 16, 4, 4), 2), ((2, 8, 3, 3), 3)])
def test_dyrelu_matches_paddle_ops(ops, mode, shape, k):
    """The fused apply against the layer's paddle ops (themselves checked
    against numpy in tests/layers), with random coefficients, all K lines
    in play, and the gradients of every parameter."""
    paddle.seed(sum(shape) + k)
    layer = DyReLU(shape[1], mode=mode, k=k, reduction=4, init="random",
                   init_a=[1.0, 0.5, -0.3][:k], init_b=[0.0, 0.1, 0.2][:k])
    rs = np.random.RandomState(0)
    x_np, g_np = rs.randn(*shape).astype("float32"), rs.randn(*shape).astype("float32")
    outs = []
    for use in (True, False):
        x = paddle.to_tensor(x_np, stop_gradient=False)
        with kernels.use(use):
            y = layer(x)
        params = [p for p in layer.parameters() if not p.stop_gradient]
        outs.append([y.numpy()] + [t.numpy() for t in paddle.grad([y], [x] + params, [paddle.to_tensor(g_np)])])
    names = ["y", "x"] + [n for n, p in layer.named_parameters() if not p.stop_gradient]
    for name, a, b in zip(names, *outs):
        if name == "spatial.bias":  # zero in exact arithmetic (softmax ignores a shift): rounding only
            assert np.abs(a).max() < 1e-6 and np.abs(b).max() < 1e-6
            continue
        assert _rel(a, b) < 1e-5, name


def test_dyrelu_from_relu_start_is_relu_inside_use(ops):
    layer = DyReLU(8, mode="C", init="relu")
    x = paddle.randn([2, 8, 4, 4])
    with kernels.use(True):
        np.testing.assert_allclose(layer(x).numpy(), F.relu(x).numpy(), rtol=0, atol=1e-6)


def _nam_gate_reference(z, w, x, g):
    """y = sigmoid(z * w_c) * x in float64, and the gradients of sum(y * g)
    by z, w and x, from the formulas."""
    z, w, x, g = (a.astype("float64") for a in (z, w, x, g))
    wc = w[None, :, None, None]
    s = 1.0 / (1.0 + np.exp(-z * wc))
    t = g * x * s * (1.0 - s)
    return s * x, t * wc, (t * z).sum(axis=(0, 2, 3)), g * s


@pytest.mark.parametrize("shape", SHAPES)
def test_nam_gate_matches_formula(ops, shape):
    rs = np.random.RandomState(sum(shape))
    z, x, g = (rs.randn(*shape).astype("float32") * 2 for _ in range(3))
    w = rs.rand(shape[1]).astype("float32") * 3
    zt, wt, xt = (paddle.to_tensor(a, stop_gradient=False) for a in (z, w, x))
    with kernels.use(True):
        y = kernels.nam_gate(zt, wt, xt)
    grads = paddle.grad([y], [zt, wt, xt], [paddle.to_tensor(g)])
    ref = _nam_gate_reference(z, w, x, g)
    for name, a, b in zip(("y", "z", "w", "x"), [y] + list(grads), ref):
        assert _rel(a.numpy(), b) < 1e-5, name


def test_nam_gate_finite_differences(ops):
    rs = np.random.RandomState(5)
    z, x, g = (rs.randn(2, 3, 3, 4).astype("float32") for _ in range(3))
    w = np.array([0.5, 1.5, 1.0], "float32")

    def loss(zv, wv, xv):
        with kernels.use(True):
            y = kernels.nam_gate(*(paddle.to_tensor(a) for a in (zv, wv, xv)))
        return float((y.numpy().astype("float64") * g).sum())

    zt, wt, xt = (paddle.to_tensor(a, stop_gradient=False) for a in (z, w, x))
    with kernels.use(True):
        y = kernels.nam_gate(zt, wt, xt)
    grads = [t.numpy() for t in paddle.grad([y], [zt, wt, xt], [paddle.to_tensor(g)])]
    h = 1e-2
    for which, arr in enumerate((z, w, x)):
        for i in rs.choice(arr.size, min(5, arr.size), replace=False):
            plus, minus = [a.copy() for a in (z, w, x)], [a.copy() for a in (z, w, x)]
            plus[which].reshape(-1)[i] += h
            minus[which].reshape(-1)[i] -= h
            numeric = (loss(*plus) - loss(*minus)) / (2 * h)
            assert abs(numeric - grads[which].reshape(-1)[i]) < 1e-2 * max(1.0, abs(numeric))


@pytest.mark.parametrize("weight_grad", [True, False])
def test_nam_channel_inside_use_matches_paddle_ops(ops, weight_grad):
    """NAM's channel attention (its batch norm and the gate) inside use
    against the same layer on paddle's ops: outputs and the gradients of the
    input and of the BN's scale and shift (through W_gamma too)."""
    paddle.seed(3)
    layer = NAMChannel(6, weight_grad=weight_grad)
    rs = np.random.RandomState(1)
    layer.bn.weight.set_value(paddle.to_tensor(rs.rand(6).astype("float32") + 0.5))
    x_np, g_np = rs.randn(3, 6, 5, 5).astype("float32"), rs.randn(3, 6, 5, 5).astype("float32")
    outs = []
    for use in (True, False):
        x = paddle.to_tensor(x_np, stop_gradient=False)
        with kernels.use(use):
            y = layer(x)
        outs.append([y.numpy()] + [t.numpy() for t in paddle.grad([y], [x, layer.bn.weight, layer.bn.bias],
                                                                     [paddle.to_tensor(g_np)])])
    for name, a, b in zip(("y", "x", "gamma", "beta"), *outs):
        assert _rel(a, b) < 1e-5, name
    with kernels.use(True):
        assert kernels.nam_gate(paddle.randn([2, 6, 3, 3]), paddle.rand([5]), paddle.randn([2, 6, 3, 3])) is None


@pytest.mark.parametrize("shape", SHAPES)
def test_add_relu_matches_formula(ops, shape):
    """relu(a + b) and its gradients from the formula in float64, with exact
    zeros among the sums (paddle's ReLU passes no gradient at 0; neither may
    the kernel)."""
    rs = np.random.RandomState(sum(shape))
    a, g = rs.randn(*shape).astype("float32"), rs.randn(*shape).astype("float32")
    b = rs.randn(*shape).astype("float32")
    b.reshape(-1)[::3] = -a.reshape(-1)[::3]                 # a + b == 0 exactly
    at, bt = (paddle.to_tensor(v, stop_gradient=False) for v in (a, b))
    with kernels.use(True):
        y = kernels.add_relu(at, bt)
    da, db = paddle.grad([y], [at, bt], [paddle.to_tensor(g)])
    z = a.astype("float64") + b
    ref_y, ref_g = np.maximum(z, 0.0), g * (z > 0)
    assert _rel(y.numpy(), ref_y) < 1e-6
    assert _rel(da.numpy(), ref_g) < 1e-6 and _rel(db.numpy(), ref_g) < 1e-6
    # the same as paddle's ops, exactly
    at2, bt2 = (paddle.to_tensor(v, stop_gradient=False) for v in (a, b))
    y2 = F.relu(at2 + bt2)
    da2, db2 = paddle.grad([y2], [at2, bt2], [paddle.to_tensor(g)])
    for mine, theirs in ((y, y2), (da, da2), (db, db2)):
        assert np.array_equal(mine.numpy(), theirs.numpy())


def test_add_relu_finite_differences(ops):
    rs = np.random.RandomState(2)
    a, b, g = (rs.randn(2, 3, 4, 5).astype("float32") for _ in range(3))
    a += np.sign(a + b) * 0.2                                 # no sum within 0.1 of the kink

    def loss(av, bv):
        with kernels.use(True):
            y = kernels.add_relu(paddle.to_tensor(av), paddle.to_tensor(bv))
        return float((y.numpy().astype("float64") * g).sum())

    at, bt = (paddle.to_tensor(v, stop_gradient=False) for v in (a, b))
    with kernels.use(True):
        y = kernels.add_relu(at, bt)
    grads = [t.numpy() for t in paddle.grad([y], [at, bt], [paddle.to_tensor(g)])]
    h = 1e-2
    for which, arr in enumerate((a, b)):
        for i in rs.choice(arr.size, 6, replace=False):
            plus, minus = [v.copy() for v in (a, b)], [v.copy() for v in (a, b)]
            plus[which].reshape(-1)[i] += h
            minus[which].reshape(-1)[i] -= h
            numeric = (loss(*plus) - loss(*minus)) / (2 * h)
            assert abs(numeric - grads[which].reshape(-1)[i]) < 1e-3 * max(1.0, abs(numeric))


def test_add_relu_dispatch(ops):
    a = paddle.randn([2, 3, 4, 4])
    assert kernels.add_relu(a, a) is None                                     # outside use: paddle's ops
    with kernels.use(True):
        assert kernels.add_relu(a, paddle.randn([2, 3, 4, 1])) is None        # broadcasting: paddle's
        assert kernels.add_relu(paddle.randn([6, 4]), paddle.randn([6, 4])) is None   # not 4-D
        assert kernels.add_relu(a, a) is not None


@pytest.mark.parametrize("attn", ["nam", "se"])
def test_a_block_with_attention_inside_use_matches_paddle_ops(ops, attn, monkeypatch):
    """A BasicBlock whose tail is attention, then the addition and ReLU (the
    add_relu kernel), against the same block on paddle's ops: the output and
    the gradients of the input and of every parameter."""
    import functools

    from ppresvar.layers.nam import NAM
    from ppresvar.layers.se import SqueezeExcite
    from ppresvar.models.resnet import BasicBlock, make_shortcut

    paddle.seed(4)
    layer = functools.partial(NAM) if attn == "nam" else functools.partial(SqueezeExcite, rd_ratio=0.25)
    block = BasicBlock(4, 8, stride=2, shortcut=make_shortcut("B", 4, 8, 2, 0.9), attn_layer=layer,
                       spatial_size=(4, 4))
    rs = np.random.RandomState(0)
    x_np, g_np = rs.randn(3, 4, 8, 8).astype("float32"), rs.randn(3, 8, 4, 4).astype("float32")
    params = [p for p in block.parameters() if not p.stop_gradient]
    fused, calls = kernels.add_relu, []
    monkeypatch.setattr(kernels, "add_relu", lambda a, b: calls.append(1) or fused(a, b))
    outs = []
    for use in (True, False):
        x = paddle.to_tensor(x_np, stop_gradient=False)
        with kernels.use(use):
            y = block(x)
        outs.append([y.numpy()] + [t.numpy() for t in paddle.grad([y], [x] + params, [paddle.to_tensor(g_np)])])
    assert len(calls) == 2                      # the block's tail asked for the kernel each time...
    assert (outs[0][0] == 0).any() and (outs[0][0] > 0).any()                # the ReLU does something
    for i, (a, b) in enumerate(zip(*outs)):
        assert _rel(a, b) < 1e-5, i


def _short_run(threads, steps=12):
    """test_conv.py's smooth short run (one fixed batch, the last BN of each
    block at zero) with the kernels on ``threads`` threads."""
    runtime.set_cpu_threads(threads)
    return _train_losses(True, steps=steps, seed=11, data_seed=1)[0]


def test_losses_do_not_depend_on_the_thread_count(ops):
    before = runtime.gomp_threads()
    try:
        runs = {n: _short_run(n) for n in (1, 2, 4)}
    finally:
        runtime.set_cpu_threads(before)
    assert runs[1][-1] < runs[1][0]
    for n in (2, 4):
        assert np.abs(runs[n] - runs[1]).max() < 1e-3, (n, np.abs(runs[n] - runs[1]).max())
