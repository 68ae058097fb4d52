"""Layers shared by the model families."""
from .conv import Conv2D
from .norm import BatchNorm2D, norm_act
from .stochastic_depth import DropPath, drop_path
from .dyrelu import DyReLU
from .nam import NAM, NAMChannel, NAMSpatial, nam_sparsity_penalty
from .se import SqueezeExcite

__all__ = ["Conv2D", "BatchNorm2D", "norm_act", "DropPath", "drop_path", "DyReLU", "NAM", "NAMChannel", "NAMSpatial",
           "nam_sparsity_penalty", "SqueezeExcite"]
