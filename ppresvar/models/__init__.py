"""Model families; importing this registers every model."""
from . import resnet  # noqa: F401
from .resnet import ResNet, BasicBlock, Bottleneck, cifar_resnet, resnet_rs

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "cifar_resnet", "resnet_rs"]
