"""NAM, normalization-based attention (Liu et al. 2021, arXiv:2111.12419).

Channel branch (eq. 2): ``M_c = sigmoid(W_gamma * BN(x)) * x`` where
``W_gamma = |gamma_i| / sum_j |gamma_j|`` comes from the BN's own scales.
Pixel branch (eq. 3): the same with a "pixel normalization", a BN whose
features are the H*W positions (statistics over batch and channels), so it is
built for one spatial size. The sparsity penalty (eq. 4) ``lambda * sum |g|``
over these BN scales is :func:`nam_sparsity_penalty`, added to the loss by
the trainer (the seed left it out; the official code adds its subgradient).

``weight_grad``: whether the gradient flows through ``W_gamma``'s
normalisation (True: as the seed and the formula read) or ``W_gamma`` is
computed from the scales' values only (False: the authors' code, which reads
``bn.weight.data``). Either way gamma is trained through the BN itself.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels
from .norm import BatchNorm2D


def _scale_weights(gamma, grad=True):
    g = paddle.abs(gamma if grad else gamma.detach())
    return g / paddle.sum(g)


class NAMChannel(nn.Layer):
    def __init__(self, channels, weight_grad=True):
        super().__init__()
        self.bn = BatchNorm2D(channels)
        self.weight_grad = weight_grad

    def forward(self, x):
        w = _scale_weights(self.bn.weight, self.weight_grad)
        z = self.bn(x)
        fused = kernels.nam_gate(z, w, x)                    # CPU training: one kernel each way
        if fused is not None:
            return fused
        return F.sigmoid(z * w.reshape([1, 1, 1, -1] if kernels.nhwc() else [1, -1, 1, 1])) * x


class NAMSpatial(nn.Layer):
    def __init__(self, spatial_size, weight_grad=True):
        super().__init__()
        self.weight_grad = weight_grad
        h, w = spatial_size
        self.hw = int(h) * int(w)
        # (B, C, H*W) read as N, L, C: normalised per position over batch and channels.
        self.bn = nn.BatchNorm1D(self.hw, data_format="NLC")

    def forward(self, x):
        y = paddle.flatten(x, 2)                                  # (B, C, HW)
        y = self.bn(y) * _scale_weights(self.bn.weight, self.weight_grad)  # broadcast on HW
        return F.sigmoid(paddle.reshape(y, paddle.shape(x))) * x


class NAM(nn.Layer):
    """Channel attention, then (``spatial=True``) pixel attention, as CBAM
    orders them. ``spatial_size`` (H, W) is needed for the pixel branch;
    ``weight_grad`` see the module's docstring."""

    def __init__(self, channels, spatial_size=None, spatial=False, weight_grad=True):
        super().__init__()
        self.channel = NAMChannel(channels, weight_grad)
        if spatial and spatial_size is None:
            raise ValueError("NAM's pixel branch needs spatial_size=(H, W)")
        self.pixel = NAMSpatial(spatial_size, weight_grad) if spatial else None

    def channels_last_ready(self):
        """The channel branch runs on NHWC activations too (ResNet.channels_last_ready)."""
        return self.pixel is None

    def forward(self, x):
        x = self.channel(x)
        if self.pixel is not None:
            x = self.pixel(x)
        return x


def nam_scales(model):
    """The BN scale parameters of every NAM branch in ``model``."""
    return [m.bn.weight for m in model.sublayers() if isinstance(m, (NAMChannel, NAMSpatial))]


def nam_sparsity_penalty(model, weight=1e-4):
    """``weight * sum |gamma|`` over NAM BN scales only (paper eq. 4), or
    ``None`` when the model has no NAM layer."""
    scales = nam_scales(model)
    if not scales:
        return None
    return weight * paddle.add_n([paddle.sum(paddle.abs(g)) for g in scales])
