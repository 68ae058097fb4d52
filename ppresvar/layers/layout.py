"""Which layers may run in a channels-last region (``ppresvar.kernels.channels_last``).

A network runs channels-last in CPU training only when every layer of the
part it runs there handles NHWC activations (:func:`channels_last_ready`):
ppresvar's ``Conv2D`` and ``BatchNorm2D`` (built NCHW, zero padding), the
layout-free layers and containers registered with :func:`nhwc_layer` (their
exact class: a subclass may compute something else), and layers whose own
``channels_last_ready()`` says so (DyReLU, NAM). Anything else keeps the
network NCHW.
"""
import paddle.nn as nn

from .conv import Conv2D
from .norm import BatchNorm2D, Sequential
from .stochastic_depth import DropPath

__all__ = ["nhwc_layer", "channels_last_ready"]

_NHWC_LAYERS = {nn.Sequential, Sequential, nn.LayerList, nn.ReLU, DropPath}


def nhwc_layer(cls):
    """Class decorator: ``cls`` computes the same in NHWC (its layers are
    checked in turn)."""
    _NHWC_LAYERS.add(cls)
    return cls


def channels_last_ready(*layers):
    """True when every sublayer of ``layers`` handles NHWC activations."""
    for layer in layers:
        for m in layer.children():
            kind = type(m)
            if hasattr(m, "channels_last_ready"):
                ok = m.channels_last_ready()
            elif kind is Conv2D:
                ok = m._padding_mode == "zeros" and m._data_format == "NCHW"
            elif kind is BatchNorm2D:
                ok = m._data_format == "NCHW"
            else:
                ok = kind in _NHWC_LAYERS and channels_last_ready(m)
            if not ok:
                return False
    return True
