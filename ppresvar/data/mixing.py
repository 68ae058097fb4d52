"""Mixup and CutMix as batch operations with soft targets.

Mixing needs two images and both labels, so it runs on a collated batch
(``images`` (B, C, H, W), ``targets`` (B, K) probabilities), never inside a
per-image pipeline (RiR seed: ``MixupImage`` in a per-image ``Compose`` could
not mix anything). Every random draw comes from the ``rng``
(``numpy.random.RandomState``) the caller passes, so a seeded run repeats.

* Mixup (Zhang et al. 2018): ``lam ~ Beta(alpha, alpha)``,
  ``x = lam*x + (1-lam)*x[perm]``, ``y = lam*y + (1-lam)*y[perm]``.
* CutMix (Yun et al. 2019): a box of area ``(1-lam)*H*W`` from ``x[perm]``
  pasted in, ``lam`` corrected to the box actually pasted after clipping.

With several listed, each batch uses one of them, drawn uniformly.
"""
import numpy as np
import paddle

from ..errors import ConfigError, suggest

__all__ = ["Mixup", "Cutmix", "BatchMixer", "build_batch_transforms"]


class Mixup(object):
    def __init__(self, alpha=1.0, prob=1.0):
        if alpha <= 0 or not 0 <= prob <= 1:
            raise ValueError("alpha must be > 0 and prob in [0, 1]")
        self.alpha, self.prob = float(alpha), float(prob)

    def lam_and_mask(self, rng, h, w):
        return float(rng.beta(self.alpha, self.alpha)), None


class Cutmix(Mixup):
    def lam_and_mask(self, rng, h, w):
        lam = rng.beta(self.alpha, self.alpha)
        cut = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = rng.randint(h), rng.randint(w)
        y1, y2 = np.clip([cy - ch // 2, cy + ch // 2], 0, h)
        x1, x2 = np.clip([cx - cw // 2, cx + cw // 2], 0, w)
        mask = np.zeros((1, 1, h, w), dtype="float32")
        mask[:, :, y1:y2, x1:x2] = 1.0
        return 1.0 - float((y2 - y1) * (x2 - x1)) / (h * w), mask


class BatchMixer(object):
    """Applies one of ``ops`` to a batch: ``(images, soft_targets, rng) ->
    (images, soft_targets)``."""

    def __init__(self, ops):
        self.ops = list(ops)

    def __call__(self, images, targets, rng):
        op = self.ops[rng.randint(len(self.ops))] if len(self.ops) > 1 else self.ops[0]
        if rng.rand() >= op.prob:
            return images, targets
        b, _, h, w = images.shape
        perm = paddle.to_tensor(rng.permutation(b).astype("int64"))
        lam, mask = op.lam_and_mask(rng, h, w)
        other_x = paddle.gather(images, perm)
        other_y = paddle.gather(targets, perm)
        if mask is None:
            images = lam * images + (1.0 - lam) * other_x
        else:
            m = paddle.to_tensor(mask, dtype=images.dtype)
            images = images * (1.0 - m) + other_x * m
        return images, lam * targets + (1.0 - lam) * other_y


_OPS = {"Mixup": Mixup, "Cutmix": Cutmix}


def build_batch_transforms(ops, where="batch_transforms"):
    """A :class:`BatchMixer`, or None for an empty list."""
    if not ops:
        return None
    if not isinstance(ops, list):
        raise ConfigError("%s must be a list like [{Mixup: {alpha: 0.2}}], got %r" % (where, ops))
    built = []
    for i, item in enumerate(ops):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError("%s[%d] must be a one-key mapping like {Mixup: {alpha: 0.2}}" % (where, i))
        (name, args), = item.items()
        if name not in _OPS:
            close = suggest(name, _OPS, n=1)
            raise ConfigError("unknown batch transform %s at %s[%d]: %s" % (
                name, where, i, "did you mean %s?" % close[0] if close else "choose Mixup or Cutmix"))
        args = args or {}
        for key in args:
            if key not in ("alpha", "prob"):
                close = suggest(key, ["alpha", "prob"], n=1)
                raise ConfigError("unknown key %s[%d].%s.%s: %s" % (
                    where, i, name, key, "did you mean %s?" % close[0] if close else "it takes alpha, prob"))
        try:
            built.append(_OPS[name](**{k: float(v) for k, v in args.items()}))
        except (TypeError, ValueError) as e:
            raise ConfigError("%s[%d].%s: %s" % (where, i, name, e))
    return BatchMixer(built)
