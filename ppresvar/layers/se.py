"""Squeeze-and-Excitation (Hu et al. 2018) as used by ResNet-RS."""
import paddle.nn as nn
import paddle.nn.functional as F


class SqueezeExcite(nn.Layer):
    """``x * sigmoid(W2 relu(W1 avgpool(x)))`` with 1x1 convolutions.

    ``rd_ratio`` is taken of ``channels`` (ResNet-RS: 0.25 of the block's 4f
    output channels, i.e. f reduced channels). ``spatial_size`` is accepted
    for the attention-layer interface of :class:`ppresvar.models.ResNet` and
    ignored.
    """

    def __init__(self, channels, spatial_size=None, rd_ratio=0.25, bias=True):
        super().__init__()
        rd = max(1, int(channels * rd_ratio))
        self.reduce = nn.Conv2D(channels, rd, 1, bias_attr=None if bias else False)
        self.expand = nn.Conv2D(rd, channels, 1, bias_attr=None if bias else False)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(self.reduce(s))
        return x * F.sigmoid(self.expand(s))
