"""ResNet in ResNet (RiR) -- Targ, Almeida, Lyman 2016, "Resnet in Resnet:
Generalizing Residual Architectures" (seed 000).

The generalized residual layer ("ResNet Init", paper eq. 1) carries two
streams, a residual stream ``r`` and a transient stream ``t``::

    r' = relu(bn_r(conv(r, W_rr) + conv(t, W_tr) + shortcut(r)))
    t' = relu(bn_t(conv(r, W_rt) + conv(t, W_tt)))

An RiR block is a ResNet block whose two convolutional layers are replaced by
generalized residual layers, with the block's outer shortcut on the residual
stream (the paper's wiring). The four convolutions of a layer are one
convolution of the concatenated streams (2*Cin -> 2*Cout) with the kernel
``[[W_rr, W_tr], [W_rt, W_tt]]``; :class:`CrossConv` computes it that way while
keeping the four convolutions' parameters, so the parameter count and the
state dict are those of the four-convolution form.

Defects of the seed fixed here (README.md, "What was wrong in the seeds"):

* its RiR block built two projections and used the second for both streams;
  ``wiring='seed'`` gives each stream its own outer shortcut, the default
  ``wiring='paper'`` gives the transient stream none;
* its weight init built ``KaimingNormal(m.weight)`` and dropped it; here the
  initializers are applied (:func:`init_weights`).

Reference figures (10 classes, BN running statistics included): ``rir18``
9,532,234 parameters (paper wiring) or 9,555,562 (``wiring='seed'``);
``rir_resnet18`` 9,574,474. The seed's ``paddle.flops`` figure at batch 128,
164,831,593,728, is that of ``wiring='seed'`` (its one projection ran on both
streams); the paper wiring counts 164,524,885,248.
"""
import paddle
import paddle.nn as nn

from .. import kernels
from ..flops import conv_flops, numel
from ..layers.conv import Conv2D
from ..layers.layout import channels_last_ready, nhwc_layer
from ..layers.norm import BatchNorm2D, Sequential, norm_act
from ..layers.weight_init import kaiming_init
from ..registry import register_model

__all__ = ["CrossConv", "ResNetInit", "RiRBlock", "RiR", "ConvLayer", "ResBlock", "RiRResNet",
           "init_weights"]

TARG2016 = "Targ, Almeida, Lyman 2016, Resnet in Resnet: Generalizing Residual Architectures"
WIRINGS = ("paper", "seed")


def _conv3x3(cin, cout, stride=1):
    # With bias, Paddle's default and the seed's.
    return Conv2D(cin, cout, 3, stride=stride, padding=1)


def _projection(cin, cout, stride):
    """1x1 conv with bias where channels or stride change, else ``None`` (identity)."""
    if cin == cout and stride == 1:
        return None
    return Conv2D(cin, cout, 1, stride=stride)




@nhwc_layer
class CrossConv(nn.Layer):
    """The four 3x3 convolutions of a generalized residual layer.

    ``forward(r, t)`` returns ``(conv_rr(r) + conv_tr(t), conv_rt(r) + conv_tt(t))``.
    ``fused=True`` runs them as one convolution of ``concat([r, t])`` with the
    kernel ``[[W_rr, W_tr], [W_rt, W_tt]]`` (residual outputs first) and the
    bias ``[b_rr + b_tr, b_rt + b_tt]``, assembled from the four parameters at
    every call; ``fused=False`` runs the four convolutions.
    """

    def __init__(self, cin, cout, stride=1, fused=True):
        super().__init__()
        self.conv_rr = _conv3x3(cin, cout, stride)
        self.conv_tr = _conv3x3(cin, cout, stride)
        self.conv_rt = _conv3x3(cin, cout, stride)
        self.conv_tt = _conv3x3(cin, cout, stride)
        self.stride = stride
        self.fused = fused

    def forward(self, r, t):
        if not self.fused:
            return (self.conv_rr(r) + self.conv_tr(t), self.conv_rt(r) + self.conv_tt(t))
        weight = paddle.concat([
            paddle.concat([self.conv_rr.weight, self.conv_tr.weight], axis=1),
            paddle.concat([self.conv_rt.weight, self.conv_tt.weight], axis=1)], axis=0)
        bias = paddle.concat([self.conv_rr.bias + self.conv_tr.bias,
                              self.conv_rt.bias + self.conv_tt.bias])
        axis = 3 if kernels.nhwc() else 1  # the channels: NCHW, or NHWC in a channels-last region
        y = kernels.conv2d(paddle.concat([r, t], axis=axis), weight, bias, stride=self.stride, padding=1)
        y_r, y_t = paddle.split(y, 2, axis=axis)
        return y_r, y_t

    def flops(self, inputs, output):
        """Counted as the four convolutions (the seed's ``paddle.flops``
        figure), whichever way they run."""
        n = numel(output[0])
        return sum(conv_flops(c, int(c.weight.shape[1]) * c._groups, n)
                   for c in (self.conv_rr, self.conv_tr, self.conv_rt, self.conv_tt))


@nhwc_layer
class ResNetInit(nn.Layer):
    """One generalized residual layer (paper eq. 1, "ResNet Init").

    The residual stream's shortcut is the identity, or a 1x1 conv (with bias
    and the layer's stride) where channels or stride change.
    """

    def __init__(self, cin, cout, stride=1, fused=True):
        super().__init__()
        self.cross = CrossConv(cin, cout, stride, fused)
        self.shortcut = _projection(cin, cout, stride)
        self.bn_r = BatchNorm2D(cout)
        self.bn_t = BatchNorm2D(cout)
        self.relu = nn.ReLU()

    def forward(self, r, t):
        y_r, y_t = self.cross(r, t)
        y_r = y_r + (r if self.shortcut is None else self.shortcut(r))
        return norm_act(self.bn_r, self.relu, y_r), norm_act(self.bn_t, self.relu, y_t)


@nhwc_layer
class RiRBlock(nn.Layer):
    """Two generalized residual layers and an outer shortcut (paper fig. 1d).

    ``wiring='paper'``: the outer shortcut goes to the residual stream only.
    ``wiring='seed'``: each stream gets its own outer shortcut (identity, or
    its own 1x1 projection where shapes change), what seed 000 meant to build
    (it built two projections and applied the second to both streams).
    """

    def __init__(self, cin, cout, stride=1, wiring="paper", fused=True):
        super().__init__()
        if wiring not in WIRINGS:
            raise ValueError("unknown wiring %r: choose 'paper' or 'seed'" % (wiring,))
        self.layer1 = ResNetInit(cin, cout, stride, fused)
        self.layer2 = ResNetInit(cout, cout, 1, fused)
        self.wiring = wiring
        self.shortcut_r = _projection(cin, cout, stride)
        self.shortcut_t = _projection(cin, cout, stride) if wiring == "seed" else None

    def forward(self, r, t):
        y_r, y_t = self.layer2(*self.layer1(r, t))
        y_r = y_r + (r if self.shortcut_r is None else self.shortcut_r(r))
        if self.wiring == "seed":
            y_t = y_t + (t if self.shortcut_t is None else self.shortcut_t(t))
        return y_r, y_t


@nhwc_layer
class ConvLayer(Sequential):
    """3x3 conv (with bias) + BN + ReLU: the standard layer that a
    generalized residual layer replaces."""

    def __init__(self, cin, cout, stride=1):
        super().__init__(_conv3x3(cin, cout, stride), BatchNorm2D(cout), nn.ReLU())


def _plan(channels, blocks):
    """``(cin, cout, stride)`` per block: stage 0 keeps the resolution, the
    first block of each later stage has stride 2."""
    if len(channels) != len(blocks):
        raise ValueError("channels and blocks differ in length: %r vs %r" % (channels, blocks))
    cin = channels[0]
    for i, (cout, n) in enumerate(zip(channels, blocks)):
        for j in range(n):
            yield cin, cout, (2 if i > 0 and j == 0 else 1)
            cin = cout


def _head(cin, num_classes):
    """The seed's classifier order: 1x1 conv, global average pool, flatten
    (pool and flatten only when ``num_classes == 0``)."""
    layers = [nn.Conv2D(cin, num_classes, 1)] if num_classes > 0 else []
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2D(1), nn.Flatten(1))


def init_weights(model):
    """:func:`ppresvar.layers.weight_init.kaiming_init`, with the classifier
    conv in fan-in mode: fan-out over 10 outputs would give it std 0.45 and
    logits of several units at the start. (Paddle's default conv init is
    fan-in Kaiming, what the seed's dropped initializer left; fan-out mode
    differs from it wherever a conv changes the channel count.)"""
    kaiming_init(model, fan_in_layers=[m for m in model.head.sublayers() if isinstance(m, nn.Conv2D)])


class RiR(nn.Layer):
    """RiR net: a stem of one :class:`ConvLayer` per stream, stages of :class:`RiRBlock`, concatenation
    of the streams, then a 1x1 conv classifier, global average pool, flatten.

    Args:
        channels, blocks: per stage, the width of each stream and the number
            of RiR blocks (RiR-18: ``[48, 96, 192]``, ``[2, 3, 3]``).
        num_classes: classifier outputs; 0 returns the pooled features.
        wiring: ``'paper'`` or ``'seed'``, see :class:`RiRBlock`.
        fused: run each layer's four convolutions as one (same result).
    """

    def __init__(self, channels, blocks, num_classes=10, in_chans=3, wiring="paper", fused=True):
        super().__init__()
        # The stem: one conv layer from the image per stream.
        self.stem_r = ConvLayer(in_chans, channels[0])
        self.stem_t = ConvLayer(in_chans, channels[0])
        self.blocks = nn.LayerList([RiRBlock(cin, cout, s, wiring, fused)
                                    for cin, cout, s in _plan(channels, blocks)])
        self.num_features = 2 * channels[-1]
        self.head = _head(self.num_features, num_classes)
        init_weights(self)

    def forward_features(self, x):
        """Both streams concatenated, NCHW; channels-last inside in CPU
        training as ``ResNet.forward_features``."""
        if self.training and kernels.channels_last_allowed(x) and self.channels_last_ready():
            with kernels.channels_last():
                r, t = self._streams(paddle.transpose(x, [0, 2, 3, 1]))
                y = paddle.concat([r, t], axis=3)
            return paddle.transpose(y, [0, 3, 1, 2])
        return paddle.concat(self._streams(x), axis=1)

    def _streams(self, x):
        r, t = self.stem_r(x), self.stem_t(x)
        for block in self.blocks:
            r, t = block(r, t)
        return r, t

    def channels_last_ready(self):
        return channels_last_ready(self.stem_r, self.stem_t, self.blocks)

    def forward(self, x):
        return self.head(self.forward_features(x))


# ------------------------------------------- the RiR paper's ResNet comparator

@nhwc_layer
class ResBlock(nn.Layer):
    """Two :class:`ConvLayer` and a shortcut (identity or 1x1 conv with bias)
    added after them: an :class:`RiRBlock` without the transient stream and
    without the layers' own shortcuts."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.layer1 = ConvLayer(cin, cout, stride)
        self.layer2 = ConvLayer(cout, cout)
        self.shortcut = _projection(cin, cout, stride)

    def forward(self, x):
        y = self.layer2(self.layer1(x))
        return y + (x if self.shortcut is None else self.shortcut(x))


class RiRResNet(nn.Layer):
    """The single-stream ResNet that RiR is compared with: :class:`RiR` with
    one stream of the width of both (``channels`` here are the full widths),
    the same stem, stage plan and classifier.

    Convs with bias, 1x1-conv projections with bias, a 1x1-conv classifier:
    this reproduces seed 000's 9,574,474 parameters and 165,021,910,272
    FLOPs at batch 128 exactly. Neither figure fixes where the ReLU sits;
    :class:`ResBlock` follows :class:`RiRBlock` (shortcut added after the
    second layer's ReLU)."""

    def __init__(self, channels, blocks, num_classes=10, in_chans=3):
        super().__init__()
        self.stem = ConvLayer(in_chans, channels[0])
        self.blocks = nn.Sequential(*[ResBlock(cin, cout, s) for cin, cout, s in _plan(channels, blocks)])
        self.num_features = channels[-1]
        self.head = _head(self.num_features, num_classes)
        init_weights(self)

    def forward_features(self, x):
        """NCHW features; channels-last inside in CPU training as ``RiR``'s."""
        if self.training and kernels.channels_last_allowed(x) and self.channels_last_ready():
            with kernels.channels_last():
                y = self.blocks(self.stem(paddle.transpose(x, [0, 2, 3, 1])))
            return paddle.transpose(y, [0, 3, 1, 2])
        return self.blocks(self.stem(x))

    def channels_last_ready(self):
        return channels_last_ready(self.stem, self.blocks)

    def forward(self, x):
        return self.head(self.forward_features(x))


# ---------------------------------------------------------------- factories

def scaled(channels, width):
    """``channels`` times the ``width`` multiplier, rounded, at least 1 each:
    a narrower net of the same wiring (for a reduced-budget run)."""
    if not width > 0:
        raise ValueError("width must be > 0, got %r" % (width,))
    return [max(1, int(round(c * width))) for c in channels]


@register_model(paper=TARG2016 + " (RiR-18, seed 000)")
def rir18(num_classes=10, wiring="paper", fused=True, width=1.0, **kw):
    """``width`` scales every stream's channels (1.0: the paper's 48/96/192)."""
    return RiR(scaled([48, 96, 192], width), [2, 3, 3], num_classes=num_classes, wiring=wiring, fused=fused, **kw)


@register_model(paper=TARG2016 + " (its 18-layer ResNet, seed 000's comparator)")
def rir_resnet18(num_classes=10, width=1.0, **kw):
    """``width`` scales the channels as :func:`rir18`'s (1.0: 96/192/384)."""
    return RiRResNet(scaled([96, 192, 384], width), [2, 3, 3], num_classes=num_classes, **kw)
