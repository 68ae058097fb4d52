"""Per-image transforms from config, and the evaluation preprocessing that
export and inference must repeat.

A pipeline is a list of one-key mappings, ``[{RandomCrop: {size: 32,
padding: 4}}, {RandomHorizontalFlip: {}}, {NormalizeImage: {mean: [...],
std: [...]}}]``. The names are ``paddle.vision.transforms`` classes working on
PIL images (their random draws use Python's ``random`` and NumPy, which the
trainer seeds per epoch), plus:

* ``RandomApply: {p: 0.5, transforms: [...]}`` -- the inner pipeline with probability p;
* ``NormalizeImage: {mean, std, scale: 1/255}`` -- last in every pipeline:
  image -> float32 CHW array ``(x * scale - mean) / std`` (PaddleClas's name).

Mixup and cutmix mix two images and their labels, so they are batch
operations (``batch_transforms``, see :mod:`ppresvar.data.mixing`), not
per-image transforms.
"""
import inspect
import random

import numpy as np

from ..errors import ConfigError, suggest

__all__ = ["build_transforms", "eval_preprocess", "eval_transform", "NormalizeImage", "RandomApply",
           "Pipeline", "TRANSFORMS"]

_PADDLE_NAMES = ["Resize", "RandomCrop", "CenterCrop", "RandomResizedCrop", "RandomHorizontalFlip",
                 "RandomVerticalFlip", "RandomRotation", "ColorJitter", "BrightnessTransform",
                 "ContrastTransform", "SaturationTransform", "HueTransform", "Pad", "Grayscale",
                 "RandomAffine", "RandomPerspective"]


class NormalizeImage(object):
    """PIL image or HWC/HW uint8 array -> float32 CHW ``(x*scale - mean) / std``."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=1.0 / 255.0):
        self.mean = np.asarray(mean, dtype="float32").reshape(-1)
        self.std = np.asarray(std, dtype="float32").reshape(-1)
        if self.mean.shape != self.std.shape or not self.mean.size:
            raise ValueError("mean and std need the same length (one value per channel)")
        if np.any(self.std == 0):
            raise ValueError("std must not be 0")
        self.scale = float(scale)

    def __call__(self, img):
        x = np.asarray(img, dtype="float32")
        if x.ndim == 2:
            x = x[:, :, None]
        if self.mean.size not in (1, x.shape[2]):
            raise ValueError("NormalizeImage has %d mean values for a %d-channel image"
                             % (self.mean.size, x.shape[2]))
        x = (x * self.scale - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1), dtype="float32")


class RandomApply(object):
    """Apply ``transforms`` (a pipeline) with probability ``p``."""

    def __init__(self, transforms, p=0.5):
        self.pipeline = transforms if callable(transforms) else build_transforms(transforms, final=False)
        self.p = float(p)

    def __call__(self, img):
        if random.random() < self.p:
            return self.pipeline(img)
        return img


class Pipeline(object):
    def __init__(self, ops, spec=()):
        self.ops = list(ops)
        self.spec = list(spec)

    def __call__(self, img):
        for op in self.ops:
            img = op(img)
        return img

    def __repr__(self):
        return "Pipeline(%s)" % ", ".join(type(op).__name__ for op in self.ops)


def _registry():
    import paddle.vision.transforms as T

    reg = {name: getattr(T, name) for name in _PADDLE_NAMES if hasattr(T, name)}
    reg["NormalizeImage"] = NormalizeImage
    reg["RandomApply"] = RandomApply
    return reg


TRANSFORMS = None  # filled on first use (paddle loads lazily)


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _parse_op(item, where):
    if isinstance(item, str):
        return item, {}
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError("%s must be a one-key mapping like {RandomCrop: {size: 32, padding: 4}}, got %r"
                          % (where, item))
    (name, args), = item.items()
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError("%s.%s takes a mapping of arguments, got %r" % (where, name, args))
    return name, args


def build_one(name, args, where, registry=None):
    reg = registry or _get_registry()
    if name in ("Mixup", "Cutmix", "MixupImage"):
        raise ConfigError("%s at %s mixes two images and their labels: it is a batch operation, put it in "
                          "batch_transforms (e.g. batch_transforms: [{Mixup: {alpha: 1.0}}])" % (name, where))
    if name not in reg:
        close = suggest(name, reg, n=1)
        hint = "did you mean %s?" % close[0] if close else "choose from %s" % ", ".join(sorted(reg))
        raise ConfigError("unknown transform %s at %s: %s" % (name, where, hint))
    cls = reg[name]
    params = inspect.signature(cls.__init__).parameters
    for key in args:
        if key not in params or key in ("self", "keys"):
            valid = [p for p in params if p not in ("self", "keys", "args", "kwargs")]
            close = suggest(key, valid, n=1)
            hint = "did you mean %s?" % close[0] if close else "it takes %s" % ", ".join(valid)
            raise ConfigError("unknown key %s.%s.%s: %s" % (where, name, key, hint))
    kwargs = dict(args)
    if name == "RandomApply":
        kwargs["transforms"] = build_transforms(kwargs.get("transforms", []), "%s.RandomApply.transforms"
                                                % where, final=False)
    else:
        kwargs = {k: _tuples(v) for k, v in kwargs.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, AssertionError) as e:
        raise ConfigError("%s.%s: bad arguments %r (%s)" % (where, name, args, e))


def _get_registry():
    global TRANSFORMS
    if TRANSFORMS is None:
        TRANSFORMS = _registry()
    return TRANSFORMS


def build_transforms(ops, where="transforms", final=True):
    """A callable applying the pipeline ``ops`` (a list of one-key dicts).
    With ``final`` the pipeline must end with ``NormalizeImage``, which makes
    the float32 CHW array the model takes."""
    if ops is None:
        ops = []
    if not isinstance(ops, list):
        raise ConfigError("%s must be a list of transforms, got %r" % (where, ops))
    built = []
    for i, item in enumerate(ops):
        name, args = _parse_op(item, "%s[%d]" % (where, i))
        built.append(build_one(name, args, "%s[%d]" % (where, i)))
    if final:
        if not built or not isinstance(built[-1], NormalizeImage):
            raise ConfigError("%s must end with NormalizeImage (mean, std), which makes the CHW float "
                              "array the model takes" % where)
        if any(isinstance(op, NormalizeImage) for op in built[:-1]):
            raise ConfigError("%s has NormalizeImage before its end: it must be the last transform" % where)
    return Pipeline(built, ops)


# ------------------------------------------------------- eval preprocessing

def _eval_section(cfg):
    loaders = cfg["DataLoader"]
    for split in ("Eval", "Test"):
        if loaders.get(split):
            return split, loaders[split]
    raise ConfigError("the config has no DataLoader.Eval or DataLoader.Test section to take the "
                      "evaluation preprocessing from")


def eval_transform(cfg):
    """The exact per-image transform evaluation uses (a :class:`Pipeline`)."""
    split, section = _eval_section(cfg)
    return build_transforms(section["transforms"], "DataLoader.%s.transforms" % split)


def _side(size):
    if isinstance(size, (list, tuple)):
        return tuple(int(s) for s in size)
    return int(size)


def eval_preprocess(cfg):
    """What evaluation does to an image, for export and inference:

    ``size`` (H, W) the model sees, ``resize`` (paddle ``Resize`` size: an int
    resizes the shorter side, a pair gives (H, W); None if not resized),
    ``crop`` (center crop (H, W) or None), ``mean``/``std``/``scale`` of
    ``(x*scale - mean)/std``, ``channels``, ``color`` ('RGB' or 'L'),
    ``layout`` 'CHW', ``interpolation``, ``class_names`` and ``num_classes``.
    """
    from .datasets import channels_of, class_names_of, native_size_of

    split, section = _eval_section(cfg)
    pipe = eval_transform(cfg)
    opts = section["dataset"]
    native = native_size_of(opts)
    size = (native, native) if native else None
    resize = crop = None
    interpolation = "bilinear"
    for name, args in (_parse_op(item, "") for item in section["transforms"]):
        if name == "Resize":
            resize = _side(args["size"])
            interpolation = args.get("interpolation", interpolation)
            if isinstance(resize, tuple):
                size = resize
            elif size is not None and size[0] == size[1]:
                size = (resize, resize)
            else:
                size = None  # aspect-dependent: only a later crop fixes it
        elif name == "CenterCrop":
            crop = _side(args["size"])
            size = crop if isinstance(crop, tuple) else (crop, crop)
        elif name not in ("NormalizeImage",):
            raise ConfigError("DataLoader.%s.transforms has %s: evaluation preprocessing takes only "
                              "Resize, CenterCrop and NormalizeImage" % (split, name))
    norm = pipe.ops[-1]
    names = class_names_of(opts)
    num_classes = cfg["Arch"].get("num_classes") or (len(names) if names else None)
    channels = channels_of(opts)
    return {
        "size": list(size) if size else None,
        "resize": list(resize) if isinstance(resize, tuple) else resize,
        "crop": list(crop) if isinstance(crop, tuple) else crop,
        "interpolation": interpolation,
        "mean": [float(v) for v in norm.mean],
        "std": [float(v) for v in norm.std],
        "scale": norm.scale,
        "channels": channels,
        "color": "RGB" if channels == 3 else "L",
        "layout": "CHW",
        "class_names": names,
        "num_classes": num_classes,
    }
