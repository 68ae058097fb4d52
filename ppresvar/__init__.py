"""ppresvar: faithful PaddlePaddle reproductions of ResNet variants."""
__version__ = "0.1.0"

# Python's zlib must load before paddle: paddle 2.6 brings a libz that breaks
# gzip (reading a CIFAR archive) when zlib is imported after it.
import zlib  # noqa: F401,E402

from . import runtime as _runtime  # noqa: E402

_runtime.cpu_env_defaults()  # before paddle loads

from .registry import create_model, list_models, register_model  # noqa: E402
from .layers.nam import nam_sparsity_penalty  # noqa: E402
from .engine.checkpoint import load_weights  # noqa: E402

__all__ = ["create_model", "list_models", "register_model", "nam_sparsity_penalty", "load_weights", "__version__"]
