"""The oneDNN convolution kernels against paddle's own (ppresvar.kernels)."""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppresvar
from ppresvar import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rel(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def _both(x_np, w_np, b_np, stride, padding, dilation=1, transpose_input=False):
    """Output and gradients (dx, dw[, db]) of the oneDNN and paddle paths."""
    results = []
    for use in (True, False):
        x = paddle.to_tensor(x_np, stop_gradient=False)
        w = paddle.to_tensor(w_np, stop_gradient=False)
        b = paddle.to_tensor(b_np, stop_gradient=False) if b_np is not None else None
        xin = x.transpose([0, 1, 3, 2]) if transpose_input else x
        with kernels.use(use):
            y = kernels.conv2d(xin, w, b, stride=stride, padding=padding, dilation=dilation)
        g = paddle.to_tensor(np.random.RandomState(1).randn(*y.shape).astype("float32"))
        grads = paddle.grad([y], [x, w] + ([b] if b is not None else []), [g])
        results.append([y.numpy()] + [t.numpy() for t in grads])
    return results


# (batch, channels in, channels out, size, kernel, stride, padding, bias)
GRID = [
    (1, 3, 16, 32, 3, 1, 1, False),      # the CIFAR stem, batch 1
    (3, 16, 16, 9, 3, 1, 1, True),       # odd batch and size
    (2, 16, 32, 15, 3, 2, 1, False),     # stride 2 on an odd size
    (2, 32, 64, 8, 1, 2, 0, True),       # a 1x1 projection shortcut
    (2, 3, 64, 23, 7, 2, 3, False),      # the ImageNet stem
    (4, 64, 64, 8, 3, 1, 1, True),
    (2, 128, 256, 6, 3, 2, 1, False),
    (1, 512, 512, 4, 3, 1, 1, True),     # widest
    (2, 5, 7, 11, 3, 1, 0, True),        # no padding, odd channels
    (2, 8, 8, 10, 7, 1, 3, False),
    (2, 8, 12, 10, 3, 2, 3, True),       # padding larger than the kernel's half
]


def _grid_inputs(n, cin, cout, size, k, bias):
    """Input, weight and bias (or None) of a GRID case, seeded by its shape."""
    rs = np.random.RandomState(n * 1000 + cin + cout + k)
    x = rs.randn(n, cin, size, size).astype("float32")
    w = (rs.randn(cout, cin, k, k) / np.sqrt(cin * k * k)).astype("float32")
    b = rs.randn(cout).astype("float32") if bias else None
    return x, w, b


@pytest.mark.parametrize("n,cin,cout,size,k,stride,pad,bias", GRID)
def test_matches_paddle(ops, n, cin, cout, size, k, stride, pad, bias):
    x, w, b = _grid_inputs(n, cin, cout, size, k, bias)
    ours, ref = _both(x, w, b, stride, pad)
    assert ours[0].shape == ref[0].shape
    for got, want, what in zip(ours, ref, ["out", "dx", "dw", "db"]):
        assert _rel(got, want) < 1e-4, what


def test_dilation_and_rectangular(ops):
    rs = np.random.RandomState(3)
    x = rs.randn(2, 6, 12, 9).astype("float32")
    w = rs.randn(4, 6, 3, 3).astype("float32")
    ours, ref = _both(x, w, None, [2, 1], [2, 1], dilation=2)
    for got, want in zip(ours, ref):
        assert _rel(got, want) < 1e-4


def test_non_contiguous_input(ops):
    rs = np.random.RandomState(4)
    x = rs.randn(2, 8, 10, 14).astype("float32")
    w = rs.randn(8, 8, 3, 3).astype("float32")
    ours, ref = _both(x, w, rs.randn(8).astype("float32"), 1, 1, transpose_input=True)
    for got, want in zip(ours, ref):
        assert _rel(got, want) < 1e-4


def test_finite_differences(ops):
    """Central differences of sum(conv(x, w) * g): the convolution is linear
    in x and in w separately, so the differences are exact up to rounding
    (checked in float64 on the float32 outputs)."""
    rs = np.random.RandomState(5)
    x = rs.randn(2, 3, 5, 5).astype("float32")
    w = rs.randn(4, 3, 3, 3).astype("float32")
    b = rs.randn(4).astype("float32")
    g = rs.randn(2, 4, 3, 3).astype("float32")

    def loss(xv, wv, bv):
        with kernels.use(True):
            y = kernels.conv2d(paddle.to_tensor(xv), paddle.to_tensor(wv), paddle.to_tensor(bv), stride=2, padding=1)
        return float((y.numpy().astype("float64") * g).sum())

    xt = paddle.to_tensor(x, stop_gradient=False)
    wt = paddle.to_tensor(w, stop_gradient=False)
    bt = paddle.to_tensor(b, stop_gradient=False)
    with kernels.use(True):
        y = kernels.conv2d(xt, wt, bt, stride=2, padding=1)
    dx, dw, db = [t.numpy() for t in paddle.grad([y], [xt, wt, bt], [paddle.to_tensor(g)])]
    for arr, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
        flat = arr.reshape(-1)
        for i in rs.choice(flat.size, min(6, flat.size), replace=False):
            args = [x, w, b]
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which].reshape(-1)[i] += 0.5
            minus[which].reshape(-1)[i] -= 0.5
            numeric = loss(*plus) - loss(*minus)
            assert abs(numeric - grad.reshape(-1)[i]) < 1e-3 * max(1.0, abs(numeric))


def _train_losses(use, steps=50, seed=7, data_seed=0):
    """ResNet-20 (last BN of each block zero-initialised) fitting one fixed
    batch: with a random init and fresh batches, training on this scale is
    chaotic, and a 1e-6 relative nudge of paddle's own weights moves the
    loss by 1e-2 within 50 steps; this setting is smooth, so the curve
    compares the kernels and not the chaos. (test_norm.py trains it on
    several thread counts.)"""
    paddle.seed(seed)
    model = ppresvar.create_model("resnet20", zero_init_last=True)
    opt = paddle.optimizer.Momentum(0.02, momentum=0.9, parameters=model.parameters(), weight_decay=1e-4)
    rs = np.random.RandomState(data_seed)
    labels = rs.randint(0, 10, size=32)
    x = paddle.to_tensor((rs.randn(32, 3, 32, 32) * 0.5 + labels[:, None, None, None] * 0.3 - 1.3).astype("float32"))
    y = paddle.to_tensor(labels)
    losses = []
    with kernels.use(use):
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.clear_grad()
            losses.append(float(loss))
    return np.array(losses), model


def test_fifty_training_steps_match(ops):
    ours, model = _train_losses(True)
    ref, _ = _train_losses(False)
    assert ours[-1] < 0.5 * ours[0]  # it learns
    assert np.abs(ours - ref).max() < 1e-3, np.abs(ours - ref).max()
    # checkpoints are interchangeable: the trained weights load into a model
    # that runs paddle's kernels, with the same outputs
    fresh = ppresvar.create_model("resnet20")
    fresh.set_state_dict(model.state_dict())
    model.eval()
    fresh.eval()
    x = paddle.randn([4, 3, 32, 32])
    with kernels.use(True):
        a = model(x).numpy()
    assert _rel(a, fresh(x).numpy()) < 1e-4


def test_only_inside_use(ops):
    """Outside ``use`` (and for GPU tensors, groups, string padding) the
    layer is paddle's convolution: the op never appears in a graph built there."""
    conv = ppresvar.layers.Conv2D(4, 4, 3, padding=1)
    x = paddle.randn([1, 4, 6, 6])
    wg = paddle.randn([4, 2, 3, 3])
    assert not kernels.active()
    with kernels.use(True):
        assert kernels.active()
        out = conv(x)
        grouped = kernels.conv2d(x, wg, groups=2, padding=1)  # groups: paddle's kernel
        same = kernels.conv2d(x, conv.weight, padding="SAME")
    assert not kernels.active()
    np.testing.assert_allclose(out.numpy(), conv(x).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(grouped.numpy(), F.conv2d(x, wg, groups=2, padding=1).numpy())
    assert same.shape == [1, 4, 6, 6]


def test_export_holds_plain_convolutions(ops, tmp_path):
    """A model exported while the kernels are on holds paddle's conv2d ops only."""
    from ppresvar import export

    model = ppresvar.create_model("resnet20")
    model.eval()
    with kernels.use(True):
        export.save_inference_model(model, str(tmp_path))
    files = os.listdir(str(tmp_path))
    program = [f for f in files if f.endswith((".json", ".pdmodel"))]
    assert program, files
    with open(os.path.join(str(tmp_path), program[0]), "rb") as f:
        text = f.read()
    assert b"ppresvar_conv2d" not in text
    assert b"conv2d" in text


def test_fallback_without_compiler(tmp_path):
    """No compiler, nothing cached: ``auto`` says why in one line and trains
    with paddle's kernels; ``onednn`` is refused with exit 2."""
    env = dict(os.environ, PATH=str(tmp_path), PPRESVAR_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("CXX", None)
    code = ("import ppresvar\nfrom ppresvar import kernels\n"
            "print('chosen', kernels.resolve('auto', 'cpu', say=print))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    lines = [l for l in out.stdout.splitlines() if l.startswith(("ppresvar:", "chosen"))]
    assert out.returncode == 0, out.stdout
    assert lines[-1] == "chosen paddle"
    assert len(lines) == 2 and "no C++ compiler" in lines[0] and "paddle's kernels" in lines[0]


def test_gpu_never_uses_them():
    assert kernels.resolve("onednn", "gpu") == "paddle"
    assert kernels.resolve("paddle", "cpu") == "paddle"
    with pytest.raises(ValueError):
        kernels.resolve("fast", "cpu")


def test_onednn_required_but_unavailable_is_one_error_line(tmp_path):
    """``Global.cpu_kernels=onednn`` where they cannot be built: tools/train.py
    stops with one ``error:`` line naming the fix, exit 2, nothing written."""
    env = dict(os.environ, PATH=str(tmp_path), PPRESVAR_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    env.pop("CXX", None)
    out = str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", os.path.join(ROOT, "configs", "demo_digits.yaml"),
           "-o", "Global.cpu_kernels=onednn", "-o", "Global.device=cpu", "-o", "Global.output_dir=%s" % out]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    # (with PATH emptied, paddle's own shell calls complain too; they are not ours)
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith("error: Global.cpu_kernels is onednn")
    assert "no C++ compiler" in errors[0] and "cpu_kernels=auto" in errors[0]
    assert not os.path.exists(out)
