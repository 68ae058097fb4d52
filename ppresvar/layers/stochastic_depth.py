"""Stochastic depth (Huang et al. 2016) as a per-sample drop of a residual branch."""
import paddle
import paddle.nn as nn


def drop_path(x, drop_prob=0.0, training=False):
    """Zero the whole residual branch of each sample with probability
    ``drop_prob`` and scale the kept ones by ``1 / (1 - drop_prob)``, so the
    expectation is unchanged. ``drop_prob`` is the *drop* rate (the ResNet-RS
    seed called it ``survival_probability``). Identity in eval."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep + paddle.rand(shape, dtype=x.dtype))
    return x / keep * mask


class DropPath(nn.Layer):
    def __init__(self, drop_prob=0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError("drop_prob must be in [0, 1), got %r" % drop_prob)
        self.drop_prob = float(drop_prob)

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self):
        return "drop_prob=%g" % self.drop_prob
