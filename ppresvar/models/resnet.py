"""One configurable ResNet for every single-stream variant of ppresvar.

* CIFAR ResNet 6n+2 -- He et al. 2015, "Deep Residual Learning for Image
  Recognition", sec. 4.2: three stages of 16/32/64 channels, option A
  (zero-padding) shortcuts.
* ResNet-18/34/50/101/152 -- same paper, with a CIFAR stem (3x3, stride 1,
  no max-pool) or the ImageNet stem.
* NAM -- Liu et al. 2021, "NAM: Normalization-based Attention Module":
  attention after the last BN of each block (``attn_layer``).
* Dynamic ReLU -- Chen et al. 2020, "Dynamic ReLU": every activation
  (``act_layer``).
* ResNet-RS -- Bello et al. 2021, "Revisiting ResNets": ResNet-D deep stem,
  average-pool projection shortcuts, SE, stochastic depth, dropout.

A variant is a factory of a few lines below, never a copy of a block.

Layer factories injected into the blocks:
``act_layer(channels) -> Layer`` and ``attn_layer(channels, spatial_size) ->
Layer`` (``spatial_size`` is the (H, W) of the block output at the model's
``input_size``; only NAM's pixel branch needs it).
"""
import functools
import math

import paddle
import paddle.nn as nn

from .. import kernels
from ..layers.conv import Conv2D
from ..layers.norm import BatchNorm2D, Sequential, norm_act
from ..layers.stochastic_depth import DropPath
from ..layers.weight_init import kaiming_init
from ..layers.dyrelu import DyReLU
from ..layers.layout import channels_last_ready, nhwc_layer
from ..layers.nam import NAM
from ..layers.se import SqueezeExcite
from ..registry import register_model

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "ZeroPadShortcut", "relu", "cifar_resnet"]

HE2015 = "He et al. 2015, Deep Residual Learning for Image Recognition"


def relu(channels):
    """The default ``act_layer``: a plain ReLU (``channels`` is unused)."""
    return nn.ReLU()


def _conv(cin, cout, k, stride=1, groups=1):
    return Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias_attr=False)


def _bn(channels, momentum):
    return BatchNorm2D(channels, momentum=momentum)


@nhwc_layer
class ZeroPadShortcut(nn.Layer):
    """Option A shortcut of He et al. 2015: subsample by ``stride`` and append
    zero channels. Built from slicing and ``concat`` with zeros rather than
    ``F.pad`` on the channel axis, which crashed Paddle Inference's oneDNN pad
    kernel; the math is the same."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        pad = out_channels - in_channels
        if not 0 <= pad <= in_channels:
            raise ValueError("option A needs in <= out <= 2*in channels, got %d -> %d"
                             % (in_channels, out_channels))
        self.stride = stride
        self.pad = pad

    def forward(self, x):
        fast = kernels.shortcut_a(x, self.stride, self.pad)  # CPU training: one kernel each way
        if fast is not None:
            return fast
        if kernels.nhwc():  # channels-last region (ResNet.forward_features)
            if self.stride > 1:
                x = x[:, ::self.stride, ::self.stride, :]
            if self.pad > 0:
                x = paddle.concat([x, paddle.zeros_like(x[:, :, :, :self.pad])], axis=3)
            return x
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad > 0:
            x = paddle.concat([x, paddle.zeros_like(x[:, :self.pad])], axis=1)
        return x


def make_shortcut(kind, cin, cout, stride, bn_momentum):
    """``'A'`` zero padding, ``'B'`` 1x1 conv + BN, ``'D'`` (ResNet-D) 2x2
    avg-pool then 1x1 conv + BN. ``None`` where identity serves."""
    if kind == "A":
        return ZeroPadShortcut(cin, cout, stride)
    if kind == "B":
        return nn.Sequential(_conv(cin, cout, 1, stride), _bn(cout, bn_momentum))
    if kind == "D":
        pool = [nn.AvgPool2D(2, stride, ceil_mode=True)] if stride > 1 else []
        return nn.Sequential(*pool, _conv(cin, cout, 1), _bn(cout, bn_momentum))
    raise ValueError("unknown shortcut %r: choose 'A', 'B' or 'D'" % kind)


class _Block(nn.Layer):
    """Shared tail of both blocks: attention, drop path, addition, activation."""

    def _init_tail(self, out, shortcut, act_layer, attn_layer, spatial_size, drop_path):
        self.attn = attn_layer(out, spatial_size) if attn_layer is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.shortcut = shortcut
        self.act_out = act_layer(out)

    def _finish(self, bn, z, x):
        """``act_out(drop_path(attn(bn(z))) + shortcut(x))``; without
        attention and drop path, the batch norm, the addition and a ReLU are
        one kernel in CPU training (:func:`norm_act`), with them the addition
        and a ReLU are."""
        identity = x if self.shortcut is None else self.shortcut(x)
        if self.attn is None and self.drop_path is None:
            return norm_act(bn, self.act_out, z, identity)
        y = bn(z)
        if self.attn is not None:
            y = self.attn(y)
        if self.drop_path is not None:
            y = self.drop_path(y)
        if isinstance(self.act_out, nn.ReLU):
            fused = kernels.add_relu(y, identity)
            if fused is not None:
                return fused
        return self.act_out(y + identity)


@nhwc_layer
class BasicBlock(_Block):
    expansion = 1

    def __init__(self, cin, planes, stride=1, shortcut=None, act_layer=relu, attn_layer=None,
                 spatial_size=None, drop_path=0.0, bn_momentum=0.9):
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride)
        self.bn1 = _bn(planes, bn_momentum)
        self.act1 = act_layer(planes)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes, bn_momentum)
        self._init_tail(planes, shortcut, act_layer, attn_layer, spatial_size, drop_path)

    def last_bn(self):
        return self.bn2

    def forward(self, x):
        y = norm_act(self.bn1, self.act1, self.conv1(x))
        return self._finish(self.bn2, self.conv2(y), x)


@nhwc_layer
class Bottleneck(_Block):
    """1x1 -> 3x3 (carries the stride, as torchvision and ResNet-RS) -> 1x1 x4."""
    expansion = 4

    def __init__(self, cin, planes, stride=1, shortcut=None, act_layer=relu, attn_layer=None,
                 spatial_size=None, drop_path=0.0, bn_momentum=0.9):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = _bn(planes, bn_momentum)
        self.act1 = act_layer(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = _bn(planes, bn_momentum)
        self.act2 = act_layer(planes)
        self.conv3 = _conv(planes, out, 1)
        self.bn3 = _bn(out, bn_momentum)
        self._init_tail(out, shortcut, act_layer, attn_layer, spatial_size, drop_path)

    def last_bn(self):
        return self.bn3

    def forward(self, x):
        y = norm_act(self.bn1, self.act1, self.conv1(x))
        y = norm_act(self.bn2, self.act2, self.conv2(y))
        return self._finish(self.bn3, self.conv3(y), x)


def make_stem(kind, in_chans, width, act_layer, bn_momentum):
    """Return ``(stem, stride)``.

    ``cifar``: 3x3 stride 1 (no max-pool); ``imagenet``: 7x7 stride 2 + 3x3
    max-pool; ``deep`` (ResNet-D as in ResNet-RS): 3x3 convs w/2 (stride 2),
    w/2, w, then a stride-2 3x3 conv in place of the max-pool;
    ``deep_cifar``: the three deep-stem convs at stride 1, nothing after.
    """

    def cba(cin, cout, k, s):
        return [_conv(cin, cout, k, s), _bn(cout, bn_momentum), act_layer(cout)]

    if kind == "cifar":
        return Sequential(*cba(in_chans, width, 3, 1)), 1
    if kind == "imagenet":
        return Sequential(*cba(in_chans, width, 7, 2), nn.MaxPool2D(3, 2, 1)), 4
    if kind in ("deep", "deep_cifar"):
        s = 2 if kind == "deep" else 1
        layers = cba(in_chans, width // 2, 3, s) + cba(width // 2, width // 2, 3, 1) + cba(width // 2, width, 3, 1)
        if kind == "deep":
            layers += cba(width, width, 3, 2)
        return Sequential(*layers), s * s
    raise ValueError("unknown stem %r: choose 'cifar', 'imagenet', 'deep' or 'deep_cifar'" % kind)


def drop_path_rates(rate, layers, schedule="linear"):
    """Per-block drop rates. ``linear``: 0 .. rate over all blocks (timm);
    ``stage``: ``rate * (s + 2) / (S + 1)`` for every block of stage ``s``
    (ResNet-RS / keras). ``rate`` is a drop rate, not a survival probability."""
    total = sum(layers)
    if schedule == "linear":
        return [rate * i / max(total - 1, 1) for i in range(total)]
    if schedule == "stage":
        return [rate * (s + 2) / (len(layers) + 1) for s, n in enumerate(layers) for _ in range(n)]
    raise ValueError("unknown drop_path_schedule %r: choose 'linear' or 'stage'" % schedule)


class ResNet(nn.Layer):
    """A ResNet built from ``block`` (``BasicBlock`` or ``Bottleneck``) and
    ``layers`` (blocks per stage); the first stage keeps the resolution, each
    later one halves it on its first block.

    Args:
        num_classes: classifier outputs; 0 returns pooled features.
        widths: ``planes`` per stage (the block multiplies by ``expansion``).
        stem: see :func:`make_stem`; ``stem_width`` its output channels
            (default ``widths[0]``).
        shortcut: ``'A'``, ``'B'`` or ``'D'``; see :func:`make_shortcut`. With
            ``'A'``/``'B'`` a projection is used only where shapes change;
            ``'D'`` (ResNet-RS) always projects on a stage's first block.
        act_layer, attn_layer: layer factories (module docstring).
        drop_path_rate, drop_path_schedule: stochastic depth, see
            :func:`drop_path_rates`.
        drop_rate: dropout before the classifier.
        bn_momentum: Paddle's convention, ``running = m*running + (1-m)*batch``.
        zero_init_last: start each residual branch's last BN at gamma = 0.
        input_size: image side the spatial attention layers are built for.
    """

    def __init__(self, block, layers, num_classes=10, widths=(64, 128, 256, 512), stem="cifar",
                 stem_width=None, in_chans=3, shortcut="B", act_layer=relu, attn_layer=None,
                 drop_path_rate=0.0, drop_path_schedule="linear", drop_rate=0.0, bn_momentum=0.9,
                 zero_init_last=False, input_size=None):
        super().__init__()
        if len(widths) != len(layers):
            raise ValueError("widths and layers differ in length: %r vs %r" % (widths, layers))
        stem_width = stem_width or widths[0]
        self.stem, stride = make_stem(stem, in_chans, stem_width, act_layer, bn_momentum)
        size = input_size or (32 if stem in ("cifar", "deep_cifar") else 224)
        size = math.ceil(size / stride)

        dprs = iter(drop_path_rates(drop_path_rate, layers, drop_path_schedule))
        cin = stem_width
        stages = []
        for i, (planes, n) in enumerate(zip(widths, layers)):
            blocks = []
            for j in range(n):
                s = 2 if (i > 0 and j == 0) else 1
                size = math.ceil(size / s)
                out = planes * block.expansion
                needs = s != 1 or cin != out or (shortcut == "D" and j == 0)
                sc = make_shortcut(shortcut, cin, out, s, bn_momentum) if needs else None
                blocks.append(block(cin, planes, s, sc, act_layer, attn_layer, (size, size),
                                    next(dprs), bn_momentum))
                cin = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.LayerList(stages)
        self.num_features = cin
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None
        self.fc = nn.Linear(cin, num_classes) if num_classes > 0 else None
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last):
        kaiming_init(self)
        if zero_init_last:
            for m in self.sublayers():
                if isinstance(m, _Block):
                    nn.initializer.Constant(0.0)(m.last_bn().weight)

    def forward_features(self, x):
        """The last stage's output, NCHW. In CPU training inside
        ``kernels.use`` (channels-last allowed), a network of plain layers
        (:meth:`channels_last_ready`) runs its stem and stages channels-last:
        the input is transposed to NHWC once, the output back to NCHW."""
        if self.training and kernels.channels_last_allowed(x) and self.channels_last_ready():
            with kernels.channels_last():
                x = self._features(paddle.transpose(x, [0, 2, 3, 1]))
            return paddle.transpose(x, [0, 3, 1, 2])
        return self._features(x)

    def _features(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def channels_last_ready(self):
        """Whether every layer of the stem and stages handles NHWC
        activations: ppresvar's ``Conv2D`` and ``BatchNorm2D`` (NCHW-built,
        zero padding), ReLU, option-A/B shortcuts, drop path, the block
        containers, and layers whose own ``channels_last_ready()`` says so
        (DyReLU, NAM's channel attention). Squeeze-excitation, NAM's pixel
        branch, pooling in the stem or the shortcut, or any other layer keep
        the network NCHW."""
        return channels_last_ready(self.stem, self.stages)

    def forward(self, x):
        x = paddle.flatten(self.pool(self.forward_features(x)), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return x if self.fc is None else self.fc(x)


# ---------------------------------------------------------------- factories

def cifar_resnet(depth, num_classes=10, **kw):
    """The 6n+2 CIFAR ResNet of He et al. 2015 sec. 4.2 for any ``depth``
    with ``(depth - 2) % 6 == 0``; option A shortcuts unless ``shortcut='B'``."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError("a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110, ...), got %r" % depth)
    n = (depth - 2) // 6
    kw.setdefault("shortcut", "A")
    return ResNet(BasicBlock, [n] * 3, num_classes=num_classes, widths=(16, 32, 64), stem="cifar", **kw)


@register_model(paper=HE2015 + ", sec. 4.2 (CIFAR, 0.27M)")
def resnet20(num_classes=10, **kw):
    return cifar_resnet(20, num_classes, **kw)


@register_model(paper=HE2015 + ", sec. 4.2 (CIFAR, 0.46M)")
def resnet32(num_classes=10, **kw):
    return cifar_resnet(32, num_classes, **kw)


@register_model(paper=HE2015 + ", sec. 4.2 (CIFAR, 0.66M)")
def resnet44(num_classes=10, **kw):
    return cifar_resnet(44, num_classes, **kw)


@register_model(paper=HE2015 + ", sec. 4.2 (CIFAR, 0.85M)")
def resnet56(num_classes=10, **kw):
    return cifar_resnet(56, num_classes, **kw)


@register_model(paper=HE2015 + ", sec. 4.2 (CIFAR, 1.7M)")
def resnet110(num_classes=10, **kw):
    return cifar_resnet(110, num_classes, **kw)


_IMAGENET_LAYERS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
                    50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3]),
                    152: (Bottleneck, [3, 8, 36, 3])}


def _resnet(depth, num_classes, stem="cifar", **kw):
    block, layers = _IMAGENET_LAYERS[depth]
    return ResNet(block, layers, num_classes=num_classes, stem=stem, **kw)


@register_model(paper=HE2015 + " (CIFAR stem by default)")
def resnet18(num_classes=10, **kw):
    return _resnet(18, num_classes, **kw)


@register_model(paper=HE2015 + " (CIFAR stem by default)")
def resnet34(num_classes=10, **kw):
    return _resnet(34, num_classes, **kw)


@register_model(paper=HE2015 + " (CIFAR stem by default)")
def resnet50(num_classes=10, **kw):
    return _resnet(50, num_classes, **kw)


@register_model(paper=HE2015 + " (CIFAR stem by default)")
def resnet101(num_classes=10, **kw):
    return _resnet(101, num_classes, **kw)


@register_model(paper=HE2015 + " (CIFAR stem by default)")
def resnet152(num_classes=10, **kw):
    return _resnet(152, num_classes, **kw)


# NAM: attention after the last BN of every block, before the addition (seed 003).
NAM_PAPER = "Liu et al. 2021, NAM: Normalization-based Attention Module (seed 003)"


@register_model(paper=NAM_PAPER)
def resnet18_nam(num_classes=10, nam_spatial=False, nam_weight_grad=True, **kw):
    """``nam_weight_grad=False``: the NAM authors' weights, from the BN scales' values only."""
    return _resnet(18, num_classes, attn_layer=functools.partial(NAM, spatial=nam_spatial,
                                                                 weight_grad=nam_weight_grad), **kw)


@register_model(paper=NAM_PAPER)
def resnet50_nam(num_classes=10, nam_spatial=False, nam_weight_grad=True, **kw):
    """``nam_weight_grad=False``: the NAM authors' weights, from the BN scales' values only."""
    return _resnet(50, num_classes, attn_layer=functools.partial(NAM, spatial=nam_spatial,
                                                                 weight_grad=nam_weight_grad), **kw)


# Dynamic ReLU at the stem and at both activations of every BasicBlock (seed 004).
DYRELU_PAPER = "Chen et al. 2020, Dynamic ReLU (seed 004)"


def _dyrelu_resnet18(mode, num_classes, reduction=8, k=2, dyrelu_init="relu", dyrelu_gate="sigmoid", **kw):
    """``reduction``, ``k``, ``dyrelu_init`` (``'relu'``: every DyReLU starts
    as a ReLU; ``'random'``: the seed's) and ``dyrelu_gate`` (``'sigmoid'`` or
    ``'hard'``): see ``ppresvar.layers.DyReLU``."""
    act = functools.partial(DyReLU, mode=mode, reduction=reduction, k=k, init=dyrelu_init, gate=dyrelu_gate)
    return _resnet(18, num_classes, act_layer=act, **kw)


@register_model(paper=DYRELU_PAPER)
def resnet18_dyrelu_a(num_classes=10, **kw):
    return _dyrelu_resnet18("A", num_classes, **kw)


@register_model(paper=DYRELU_PAPER)
def resnet18_dyrelu_b(num_classes=10, **kw):
    return _dyrelu_resnet18("B", num_classes, **kw)


@register_model(paper=DYRELU_PAPER)
def resnet18_dyrelu_c(num_classes=10, **kw):
    return _dyrelu_resnet18("C", num_classes, **kw)


# ResNet-RS (Bello et al. 2021, table 11 block layouts; seed 002).
RS_PAPER = "Bello et al. 2021, Revisiting ResNets (ResNet-RS, seed 002)"
RS_LAYERS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3], 200: [3, 24, 36, 3],
             270: [4, 29, 53, 4], 350: [4, 36, 72, 4], 420: [4, 44, 87, 4]}


def resnet_rs(depth, num_classes=1000, stem="imagenet", se_ratio=0.25, drop_path_rate=0.0,
              drop_path_schedule="stage", drop_rate=0.25, bn_momentum=0.9, **kw):
    """ResNet-RS of ``depth`` in RS_LAYERS. ``stem='imagenet'`` is the
    ResNet-D deep stem of the paper; ``stem='cifar'`` keeps its three convs
    at stride 1 for 32x32 inputs."""
    if depth not in RS_LAYERS:
        raise ValueError("ResNet-RS depth must be one of %s, got %r" % (sorted(RS_LAYERS), depth))
    deep = {"imagenet": "deep", "cifar": "deep_cifar"}.get(stem, stem)
    attn = functools.partial(SqueezeExcite, rd_ratio=se_ratio) if se_ratio > 0 else None
    return ResNet(Bottleneck, RS_LAYERS[depth], num_classes=num_classes, stem=deep, shortcut="D",
                  attn_layer=attn, drop_path_rate=drop_path_rate,
                  drop_path_schedule=drop_path_schedule, drop_rate=drop_rate,
                  bn_momentum=bn_momentum, **kw)


@register_model(paper=RS_PAPER)
def resnetrs50(num_classes=1000, **kw):
    return resnet_rs(50, num_classes, **kw)


@register_model(paper=RS_PAPER)
def resnetrs101(num_classes=1000, **kw):
    return resnet_rs(101, num_classes, **kw)


@register_model(paper=RS_PAPER)
def resnetrs152(num_classes=1000, **kw):
    return resnet_rs(152, num_classes, **kw)


@register_model(paper=RS_PAPER)
def resnetrs200(num_classes=1000, **kw):
    return resnet_rs(200, num_classes, **kw)


@register_model(paper=RS_PAPER)
def resnetrs270(num_classes=1000, **kw):
    return resnet_rs(270, num_classes, **kw)


@register_model(paper=RS_PAPER)
def resnetrs350(num_classes=1000, **kw):
    return resnet_rs(350, num_classes, **kw)


@register_model(paper=RS_PAPER)
def resnetrs420(num_classes=1000, **kw):
    return resnet_rs(420, num_classes, **kw)
