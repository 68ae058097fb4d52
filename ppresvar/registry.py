"""Model registry: ``register_model``, ``create_model``, ``list_models``.

A model is registered by decorating a factory function; its name is the
function's name. The model modules register themselves when
``ppresvar.models`` is imported, which is where ``create_model`` and
``list_models`` are taken from (``ppresvar.create_model`` loads it); this
module imports none of them. Nothing here evaluates strings or looks names
up in ``globals()``.
"""
import fnmatch

from .errors import suggest

_MODELS = {}
_PAPERS = {}


class UnknownModelError(KeyError):
    """Raised by :func:`create_model` for a name that is not registered."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


def register_model(fn=None, *, paper=""):
    """Register ``fn`` under ``fn.__name__``. Use as ``@register_model`` or
    ``@register_model(paper="He et al. 2015")``."""

    def wrap(f):
        name = f.__name__
        if name in _MODELS:
            raise ValueError("model %r is registered twice" % name)
        _MODELS[name] = f
        _PAPERS[name] = paper
        return f

    return wrap(fn) if fn is not None else wrap


def list_models(pattern="*"):
    """Sorted names of the registered models matching a shell-style pattern."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_factory(name):
    """The registered factory function of ``name`` (to inspect its options)."""
    if not isinstance(name, str) or name not in _MODELS:
        raise UnknownModelError("unknown model %r" % (name,))
    return _MODELS[name]


def model_paper(name):
    """The paper (or seed) a registered model reproduces."""
    return _PAPERS[name]


def create_model(name, num_classes=None, pretrained=None, **options):
    """Build a registered model by name.

    ``num_classes`` defaults to the factory's own (10 for the CIFAR models,
    1000 for ResNet-RS). ``options`` go to the model's factory (for example ``stem='cifar'``,
    ``shortcut='B'``, ``drop_path_rate=0.1``). ``pretrained``: weights to load, a
    ``model.safetensors`` (as kept in results/ or written by tools/export.py) or a
    checkpoint of your own (:func:`ppresvar.load_weights`; a file of another model
    is a CheckpointError naming what does not fit). An unknown name raises
    :class:`UnknownModelError` naming the closest registered names.
    """
    if not isinstance(name, str) or name not in _MODELS:
        close = suggest(str(name), _MODELS)
        hint = ("did you mean %s?" % ", ".join(close)) if close else (
            "see ppresvar.list_models() for the %d registered names" % len(_MODELS))
        raise UnknownModelError("unknown model %r: %s" % (name, hint))
    if num_classes is not None:
        options["num_classes"] = num_classes
    model = _MODELS[name](**options)
    if pretrained:
        from .engine.checkpoint import load_weights

        load_weights(model, pretrained)
    return model
