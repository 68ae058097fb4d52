"""Model families; importing this registers every model."""
from . import resnet  # noqa: F401
from . import rir  # noqa: F401
from .resnet import ResNet, BasicBlock, Bottleneck, cifar_resnet, resnet_rs
from .rir import RiR, RiRResNet

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "cifar_resnet", "resnet_rs", "RiR", "RiRResNet"]
