"""Evaluation: loss and top-k over a loader, summed over images (and ranks).

The loss reported for validation and test is plain cross entropy (no label
smoothing, no mixing, no penalty), so runs with different recipes compare.
"""
import contextlib

import paddle

from ..data.datasets import check_same_classes, class_names_of
from ..data.loader import build_loader
from ..errors import ConfigError
from . import distributed, faults
from .builder import build_model
from .checkpoint import load_weights
from .device import setup_device
from .losses import soft_cross_entropy
from .metrics import MetricSums, topk_correct

__all__ = ["evaluate", "evaluate_config", "eval_topk", "autocast"]


def eval_topk(cfg):
    """The k's reported: 1 and 5 always, plus ``Metric.topk``."""
    return tuple(sorted(set([1, 5] + list(cfg["Metric"]["topk"]))))


def autocast(enabled, level="O1"):
    """``paddle.amp.auto_cast`` when AMP is on, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return paddle.amp.auto_cast(enable=True, level=level)


@paddle.no_grad()
def evaluate(model, loader, topk=(1, 5), amp=False, amp_level="O1", epoch=None):
    """:class:`MetricSums` of ``model`` over ``loader`` (summed over ranks).
    ``epoch``: the training epoch validated (for the test-only kill hook)."""
    was_training = model.training
    model.eval()
    sums = MetricSums(topk)
    for i, (images, labels) in enumerate(loader):
        with autocast(amp, amp_level):
            logits = model(images)
        loss = soft_cross_entropy(logits, labels)
        sums.update(float(loss), topk_correct(logits, labels, topk), int(labels.shape[0]))
        if epoch is not None:
            faults.point("val", epoch, i + 1)
    if was_training:
        model.train()
    return sums.all_reduce()


def evaluate_config(cfg, split="test", weights=None, use_ema=True):
    """Evaluate ``weights`` (default ``Global.pretrained_model``) on the
    ``test`` split (``DataLoader.Test``) or the held-out ``val`` split
    (``DataLoader.Eval``). Returns a dict of figures."""

    weights = weights or cfg["Global"]["pretrained_model"]
    if not weights:
        raise ConfigError("no weights to evaluate: pass -o Global.pretrained_model=PATH "
                          "(e.g. output/<run>/checkpoints/best.pdckpt)")
    section_name = {"test": "Test", "val": "Eval"}[split]
    section = cfg["DataLoader"].get(section_name)
    if not section:
        raise ConfigError("the config has no DataLoader.%s section to evaluate the %s split on"
                          % (section_name, split))
    distributed.init()
    _, amp = setup_device(cfg)
    model = build_model(cfg)
    ckpt = load_weights(model, weights, use_ema=use_ema)
    loader, _, dataset = build_loader(section, "DataLoader.%s" % section_name, rank=distributed.rank(),
                                      world_size=distributed.world_size(), training=False)
    train = cfg["DataLoader"].get("Train")
    if train and section_name != "Train":
        check_same_classes(class_names_of(train["dataset"]), dataset.class_names, "DataLoader.Train",
                           "DataLoader.%s" % section_name)
    sums = evaluate(model, loader, eval_topk(cfg), amp, cfg["AMP"]["level"])
    result = {"split": split, "loss": sums.loss}
    for k in sums.topk:
        result["top%d" % k] = sums.accuracy(k)
    result.update({"samples": sums.count, "arch": cfg["Arch"]["name"], "weights": weights,
                   "ema": bool(use_ema and ckpt.get("ema")), "epoch": ckpt.get("epoch")})
    return result
