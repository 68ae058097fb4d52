"""Losses: cross entropy on hard or soft targets with label smoothing, and
the NAM sparsity penalty.

Soft targets come from mixup/cutmix; label smoothing then mixes them with the
uniform distribution, ``(1 - eps) * y + eps / K`` (the same as
``F.cross_entropy(..., soft_label=True, label_smoothing=eps)``), written out
so that it reads the same on every paddle version.
"""
import paddle
import paddle.nn.functional as F

from ..layers.nam import nam_sparsity_penalty

__all__ = ["to_soft_targets", "soft_cross_entropy", "TrainLoss"]


def to_soft_targets(labels, num_classes):
    """int64 labels (B,) -> float32 one-hot (B, K)."""
    return F.one_hot(labels.reshape([-1]).astype("int64"), num_classes).astype("float32")


def soft_cross_entropy(logits, targets, label_smoothing=0.0, reduction="mean"):
    """Cross entropy of ``logits`` (B, K) against ``targets``: int labels (B,)
    or probabilities (B, K). Computed in float32 (AMP logits are cast)."""
    logits = logits.astype("float32")
    k = logits.shape[-1]
    if targets.ndim == 1 or (targets.ndim == 2 and targets.shape[-1] == 1 and k != 1):
        targets = to_soft_targets(targets, k)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / k
    per_sample = -paddle.sum(targets * F.log_softmax(logits, axis=-1), axis=-1)
    if reduction == "sum":
        return paddle.sum(per_sample)
    if reduction == "none":
        return per_sample
    return paddle.mean(per_sample)


class TrainLoss(object):
    """The training objective: smoothed soft-target cross entropy, plus
    ``nam_sparsity * sum |gamma|`` over the NAM BN scales (NAM paper eq. 4;
    its gradient is the ``s * sign(gamma)`` the official code adds) when the
    model has NAM layers."""

    def __init__(self, label_smoothing=0.0, nam_sparsity=0.0):
        self.label_smoothing = float(label_smoothing)
        self.nam_sparsity = float(nam_sparsity)

    def __call__(self, logits, targets, model):
        loss = soft_cross_entropy(logits, targets, self.label_smoothing)
        if self.nam_sparsity:
            penalty = nam_sparsity_penalty(model, self.nam_sparsity)
            if penalty is not None:
                loss = loss + penalty
        return loss

    @classmethod
    def from_config(cls, cfg):
        section = cfg["Loss"]
        return cls(section["label_smoothing"], section["nam_sparsity"])
