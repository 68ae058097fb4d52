"""ppresvar: faithful PaddlePaddle reproductions of ResNet variants."""
__version__ = "0.1.0"

from . import runtime as _runtime

_runtime.cpu_env_defaults()  # before paddle loads

from .registry import create_model, list_models, register_model  # noqa: E402
from .layers.nam import nam_sparsity_penalty  # noqa: E402

__all__ = ["create_model", "list_models", "register_model", "nam_sparsity_penalty", "__version__"]
