"""``Conv2D``: ``paddle.nn.Conv2D`` whose eager CPU forward and backward run
through ppresvar's oneDNN kernels while :func:`ppresvar.kernels.use` is on
(the trainer turns it on for CPU training). Same parameters, same state
dict, and the same ``conv2d`` op in an exported program."""
import paddle.nn as nn

from .. import kernels

__all__ = ["Conv2D"]


class Conv2D(nn.Conv2D):
    def forward(self, x):
        # kernels.conv2d: oneDNN where it applies, else F.conv2d in the layout of the region (NCHW or NHWC)
        if (kernels.active() or kernels.nhwc()) and self._padding_mode == "zeros" and self._data_format == "NCHW":
            return kernels.conv2d(x, self.weight, self.bias, self._stride, self._padding, self._dilation,
                                  self._groups)
        # explicit base call: paddle 2.6's to_static rewrites this method, and a
        # zero-argument super() has no class cell there
        return nn.Conv2D.forward(self, x)
