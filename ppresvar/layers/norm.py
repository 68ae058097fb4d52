"""Batch norm that trains through ppresvar's multi-threaded CPU kernels
while :func:`ppresvar.kernels.use` is on (paddle's own run on one thread),
and :func:`norm_act`, which fuses what follows a batch norm in a residual
block (the addition of the shortcut, a ReLU) into the same kernel.

Outside that block (GPU, evaluation, static graphs and export) these are
paddle's ops, with the same parameters and buffers under the same names, so
checkpoints and exported programs do not change.
"""
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels

__all__ = ["BatchNorm2D", "norm_act", "Sequential"]


class BatchNorm2D(nn.BatchNorm2D):
    """``paddle.nn.BatchNorm2D``; in CPU training inside
    :func:`ppresvar.kernels.use`, one kernel each way (same math, running
    statistics updated the same way)."""

    def forward(self, x):
        y = kernels.batch_norm(x, self)
        if y is not None:
            return y
        if kernels.nhwc():  # a channels-last region (ppresvar.kernels), where the kernel does not apply
            return F.batch_norm(x, self._mean, self._variance, weight=self.weight, bias=self.bias,
                                training=self.training, momentum=self._momentum, epsilon=self._epsilon,
                                data_format="NHWC", use_global_stats=getattr(self, "_use_global_stats", None))
        # (super() with no arguments fails in paddle 2.6's converted code, under paddle.jit)
        return nn.BatchNorm2D.forward(self, x)


def norm_act(bn, act, x, residual=None):
    """``act(bn(x) + residual)`` (``residual`` optional): one fused kernel
    each way in CPU training where ``act`` is a plain ReLU, the batch norm
    (and addition) fused and ``act`` after it for any other activation, and
    paddle's ops everywhere else."""
    relu = type(act) is nn.ReLU
    y = kernels.batch_norm(x, bn, relu=relu, residual=residual)
    if y is not None:
        return y if relu else act(y)
    y = bn(x)
    if residual is not None:
        y = y + residual
    return act(y)


class Sequential(nn.Sequential):
    """``nn.Sequential`` (same layers, same parameter names) that runs each
    batch norm and the layer after it through :func:`norm_act`."""

    def forward(self, x):
        layers = list(self._sub_layers.values())
        i = 0
        while i < len(layers):
            if isinstance(layers[i], nn.BatchNorm2D) and i + 1 < len(layers):
                x = norm_act(layers[i], layers[i + 1], x)
                i += 2
            else:
                x = layers[i](x)
                i += 1
        return x
