"""The preprocessing an export carries (``preprocess.json``): the eval
pipeline of the config it was made from, run by the same code as
``tools/eval.py``."""
from .layout import META_FILE

__all__ = ["eval_transform", "default_eval_ops", "config_preprocess"]


def eval_transform(meta):
    """The evaluation transform of an export: ``build_transforms`` of the
    eval pipeline saved from the config, the very code path that
    ``ppresvar.data.eval_transform(cfg)`` (``tools/eval.py``) runs. An export
    made without a config (``export_model`` on a bare model) gets a
    ``NormalizeImage`` of its ``mean``/``std``, after a ``Resize`` to ``size``.
    Maps a PIL image to a float32 CHW array."""
    from ..data.transforms import build_transforms

    ops = meta.get("transforms")
    if not ops:
        ops = default_eval_ops(meta)
    return build_transforms(ops, "%s transforms" % META_FILE)


def default_eval_ops(meta):
    """Eval ops for an export with ``size``/``mean``/``std`` but no pipeline."""
    size = meta.get("size") or 32
    ops = [{"Resize": {"size": list(size) if isinstance(size, (list, tuple)) else [int(size), int(size)]}}]
    channels = int(meta.get("channels") or 3)
    mean = meta.get("mean") or [0.0] * channels
    std = meta.get("std") or [1.0] * channels
    return ops + [{"NormalizeImage": {"mean": list(mean), "std": list(std)}}]


def config_preprocess(cfg):
    """What ``preprocess.json`` holds for a config: the data package's
    ``eval_preprocess(cfg)`` (size, mean, std, class names...) plus the eval
    pipeline itself (``transforms``) for :func:`eval_transform`."""
    from ..data.transforms import eval_preprocess, eval_transform as cfg_eval_transform

    pre = dict(eval_preprocess(cfg))
    pre["transforms"] = list(cfg_eval_transform(cfg).spec)
    return pre
