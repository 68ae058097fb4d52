"""The option-A shortcut kernel against a numpy reference and paddle's ops."""
import numpy as np
import paddle
import pytest

from ppresvar import kernels
from ppresvar.models.resnet import ZeroPadShortcut


@pytest.mark.parametrize("shape,stride,cout", [((3, 4, 9, 7), 2, 8), ((2, 16, 32, 32), 2, 32), ((1, 5, 6, 6), 1, 7),
                                               ((2, 3, 5, 8), 3, 6)])
def test_matches_reference(ops, shape, stride, cout):
    rs = np.random.RandomState(0)
    x_np = rs.randn(*shape).astype("float32")
    pad = cout - shape[1]
    # numpy reference: subsample, then zero channels
    sub = x_np[:, :, ::stride, ::stride]
    want = np.concatenate([sub, np.zeros((shape[0], pad) + sub.shape[2:], "float32")], axis=1)
    g_np = rs.randn(*want.shape).astype("float32")
    want_dx = np.zeros_like(x_np)
    want_dx[:, :, ::stride, ::stride] = g_np[:, :shape[1]]

    layer = ZeroPadShortcut(shape[1], cout, stride)
    for use in (True, False):
        x = paddle.to_tensor(x_np, stop_gradient=False)
        with kernels.use(use):
            y = layer(x)
        (dx,) = paddle.grad([y], [x], [paddle.to_tensor(g_np)])
        np.testing.assert_array_equal(y.numpy(), want)
        np.testing.assert_array_equal(dx.numpy(), want_dx)


def test_not_used_outside(ops):
    assert kernels.shortcut_a(paddle.randn([1, 2, 4, 4]), 2, 2) is None
