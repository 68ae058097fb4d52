"""Objects from a validated config: the model, and the number of classes."""
import inspect
import re

from ..errors import ConfigError, suggest
from ..models import UnknownModelError, create_model, list_models, model_factory

__all__ = ["build_model", "resolve_num_classes", "model_options", "UnknownModelError"]


def model_options(cfg):
    """The ``Arch`` keys passed to the model's factory."""
    return {k: v for k, v in cfg["Arch"].items() if k not in ("name", "num_classes")}


def resolve_num_classes(cfg):
    """``Arch.num_classes``, or the class count of the first data set given."""
    n = cfg["Arch"].get("num_classes")
    if n:
        return n
    from ..data.datasets import num_classes_of

    for split in ("Train", "Eval", "Test"):
        section = cfg["DataLoader"].get(split)
        if section:
            return num_classes_of(section["dataset"])
    return None


def build_model(cfg):
    """A paddle Layer for the ``Arch`` section: ``create_model(name,
    num_classes, **other Arch keys)``. An unknown model raises
    :class:`UnknownModelError`; an option the model does not take, a
    :class:`ConfigError` naming it."""
    arch = cfg["Arch"]
    name = arch["name"]
    if name not in list_models():
        create_model(name)  # raises UnknownModelError with the closest names
    options = model_options(cfg)
    try:
        return create_model(name, num_classes=resolve_num_classes(cfg), **options)
    except TypeError as e:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if not m:
            raise
        bad = m.group(1)
        valid = _accepted_options(name)
        close = suggest(bad, valid, n=1)
        hint = "did you mean Arch.%s?" % close[0] if close else "see the model's factory for its options"
        raise ConfigError("unknown key Arch.%s: model %s takes no option %r; %s" % (bad, name, bad, hint))
    except ValueError as e:
        raise ConfigError("Arch (%s): %s" % (name, e))


def _accepted_options(name):
    """Options a registered model takes: its factory's and its class's keywords."""
    names = []
    try:
        factory = model_factory(name)
    except UnknownModelError:
        factory = None
    if factory is not None:
        names += [p for p in inspect.signature(factory).parameters if p not in ("kw", "kwargs")]
        try:
            model = factory()
            names += [p for p in inspect.signature(type(model).__init__).parameters
                      if p not in ("self", "kw", "kwargs", "block", "layers")]
        except Exception:
            pass
    return sorted(set(names))

