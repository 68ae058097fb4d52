"""ppresvar: faithful PaddlePaddle reproductions of ResNet variants.

``import ppresvar`` changes nothing in the process (no environment variable,
allocator setting or thread count) and does not load paddle: the public names
below load their module on first use. The command-line tools and the trainer
apply ppresvar's CPU settings themselves (:mod:`ppresvar.runtime`).
"""
import importlib

# Python's zlib must load before paddle: paddle 2.6 brings a libz that breaks
# gzip (reading a CIFAR archive) when zlib is imported after it.
import zlib  # noqa: F401

__version__ = "0.1.0"

_PUBLIC = {  # name -> the module that defines it
    "create_model": "ppresvar.models",
    "list_models": "ppresvar.models",
    "register_model": "ppresvar.registry",
    "load_weights": "ppresvar.engine.checkpoint",
    "nam_sparsity_penalty": "ppresvar.layers.nam",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError("module 'ppresvar' has no attribute %r" % name)


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
