"""Model families; importing this registers every model, so the registry's
``create_model`` and ``list_models`` are taken from here."""
from ..registry import UnknownModelError, create_model, list_models, model_factory, model_paper
from .resnet import ResNet, BasicBlock, Bottleneck, cifar_resnet, resnet_rs
from .rir import RiR, RiRResNet

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "cifar_resnet", "resnet_rs", "RiR", "RiRResNet",
           "create_model", "list_models", "model_factory", "model_paper", "UnknownModelError"]
