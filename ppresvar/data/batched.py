"""The batched input path: crop, flip and normalise a whole uint8 batch in NumPy.

When a pipeline holds only ``RandomCrop`` (zero padding, no
``pad_if_needed``) and ``RandomHorizontalFlip`` before the final
``NormalizeImage``, and the data set holds equally sized uint8 images in
memory (CIFAR, digits, synthetic: ``datasets.IN_MEMORY``), the loader makes
no per-image Python objects: each batch is one fancy index into the
``(N, H, W, C)`` array, padded once, cropped through a strided view, flipped
with a mask and normalised to float32 NCHW (``DataLoader.<split>.batched``).

The random draws of a batch come from a NumPy Generator seeded from ``(seed,
epoch, rank, batch number)`` (the sampler derives the seed), so a batch does
not depend on ``num_workers`` and a resume at an epoch boundary is exact.
They are not the per-image path's draws (Python's ``random``): same
distribution, different stream. The output of ``NormalizeImage`` alone (the
evaluation pipelines) is bit-identical to the per-image path's.
"""
import numbers

import numpy as np
import paddle
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, DataError
from .datasets import IN_MEMORY
from .transforms import NormalizeImage, build_transforms

__all__ = ["BatchRandomCrop", "BatchHorizontalFlip", "BatchPipeline", "BatchedDataset", "plan_batched",
           "batched_pipeline", "collate_batch"]

SUPPORTED = ("RandomCrop (zero padding, pad_if_needed false), RandomHorizontalFlip and NormalizeImage "
             "on %s data" % ", ".join(IN_MEMORY))


def _padding(padding):
    """paddle's ``padding`` (int, (left/right, top/bottom) or (left, top,
    right, bottom)) as (top, bottom, left, right)."""
    if padding is None:
        return 0, 0, 0, 0
    if isinstance(padding, numbers.Number):
        return (int(padding),) * 4
    p = tuple(int(v) for v in padding)
    if len(p) == 2:
        return p[1], p[1], p[0], p[0]
    return p[1], p[3], p[0], p[2]


class BatchRandomCrop(object):
    """``RandomCrop(size, padding)`` on a uint8 NCHW batch: zero padding,
    offsets uniform over every position (paddle's ``random.randint(0, h - th)``)."""

    def __init__(self, size, padding=None):
        self.size = (int(size),) * 2 if isinstance(size, numbers.Number) else tuple(int(s) for s in size)
        self.pad = _padding(padding)

    def padded_shape(self, h, w):
        top, bottom, left, right = self.pad
        return h + top + bottom, w + left + right

    def draw(self, rng, n, h, w):
        """Offsets ``(oy, ox)`` (each ``(n,)`` int) into the padded images."""
        ph, pw = self.padded_shape(h, w)
        return rng.integers(0, ph - self.size[0] + 1, size=n), rng.integers(0, pw - self.size[1] + 1, size=n)

    def apply(self, x, oy, ox):
        top, bottom, left, right = self.pad
        if any(self.pad):
            x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        windows = sliding_window_view(x, self.size, axis=(2, 3))  # (N, C, H', W', th, tw), no copy
        return windows[np.arange(len(x)), :, oy, ox]               # (N, C, th, tw), one gather

    def __call__(self, x, rng):
        return self.apply(x, *self.draw(rng, x.shape[0], x.shape[2], x.shape[3]))


class BatchHorizontalFlip(object):
    """``RandomHorizontalFlip(prob)`` on a uint8 NCHW batch."""

    def __init__(self, prob=0.5):
        self.prob = float(prob)

    def draw(self, rng, n):
        """The mask of the images to flip (``(n,)`` bool)."""
        return rng.random(n) < self.prob

    def apply(self, x, flips):
        out = x.copy()
        out[flips] = x[flips][:, :, :, ::-1]
        return out

    def __call__(self, x, rng):
        return self.apply(x, self.draw(rng, x.shape[0]))


class BatchPipeline(object):
    """``(uint8 (N, H, W, C) batch, rng) -> float32 (N, C, H', W')``: the
    random ops in order, then ``NormalizeImage``'s ``(x*scale - mean) / std``."""

    def __init__(self, ops, normalize):
        self.ops = list(ops)
        self.normalize = normalize
        self.random = bool(self.ops)  # every op here draws

    def check(self, shape, where):
        """Fail before training when images of ``shape`` (H, W, C) cannot go through."""
        h, w, c = shape
        for op in self.ops:
            if isinstance(op, BatchRandomCrop):
                ph, pw = op.padded_shape(h, w)
                if op.size[0] > ph or op.size[1] > pw:
                    raise DataError("%s.transforms: RandomCrop size %s is larger than the padded %dx%d images"
                                    % (where, list(op.size), ph, pw))
                h, w = op.size
        if self.normalize.mean.size not in (1, c):
            raise DataError("%s.transforms: NormalizeImage has %d mean values for %d-channel images"
                            % (where, self.normalize.mean.size, c))

    def __call__(self, images, rng=None):
        x = images.transpose(0, 3, 1, 2)  # a view; the crop or the normalisation copies
        for op in self.ops:
            x = op(x, rng)
        norm = self.normalize
        x = x.astype("float32", order="C")  # NCHW in memory
        mean, std = norm.mean.reshape(1, -1, 1, 1), norm.std.reshape(1, -1, 1, 1)
        return np.ascontiguousarray((x * norm.scale - mean) / std, dtype="float32")


def plan_batched(pipeline, dataset_name, where="DataLoader.Train"):
    """``(BatchPipeline, None)`` when the built per-image ``pipeline`` can
    run on whole batches of ``dataset_name``; else ``(None, reason)`` naming
    what prevents it."""
    import paddle.vision.transforms as T

    if dataset_name not in IN_MEMORY:
        return None, "the data set %s (its images are not held in memory as one array)" % dataset_name
    ops = []
    for i, op in enumerate(pipeline.ops[:-1]):
        at = "%s.transforms[%d] %s" % (where, i, type(op).__name__)
        if type(op) is T.RandomCrop:
            if op.pad_if_needed:
                return None, at + " with pad_if_needed"
            if op.padding_mode != "constant" or np.any(np.asarray(op.fill) != 0):
                return None, at + " with padding other than zeros"
            ops.append(BatchRandomCrop(op.size, op.padding))
        elif type(op) is T.RandomHorizontalFlip:
            ops.append(BatchHorizontalFlip(op.prob))
        else:
            return None, at
    return BatchPipeline(ops, pipeline.ops[-1]), None


def batched_pipeline(section, where, pipeline=None):
    """The :class:`BatchPipeline` of a ``DataLoader.<split>`` section, or
    None for the per-image path; by its ``batched`` key: ``auto`` (batched
    when the pipeline and data set allow it), true (required: a ConfigError
    names what prevents it) or false."""
    mode = section.get("batched", "auto")
    if mode != "auto" and not mode:
        return None
    if pipeline is None:
        pipeline = build_transforms(section["transforms"], where + ".transforms")
    assert isinstance(pipeline.ops[-1], NormalizeImage)
    batch, reason = plan_batched(pipeline, section["dataset"]["name"], where)
    if batch is None and mode != "auto":
        raise ConfigError("%s.batched is true but %s cannot run on whole batches (the batched path takes %s): "
                          "change it, or set %s.batched to auto or false for the per-image path"
                          % (where, reason, SUPPORTED, where))
    return batch


class BatchedDataset(paddle.io.Dataset):
    """A :class:`~ppresvar.data.datasets.SplitDataset` read a batch at a
    time: ``dataset[(seed, indices)]`` -> ``(float32 NCHW images, int64
    labels)``, the random draws from ``numpy.random.default_rng(seed)``."""

    def __init__(self, split, pipeline, where):
        self.split = split
        self.pipeline = pipeline
        self.images = split.base.image_array()
        self.all_labels = np.asarray(split.base.labels, dtype="int64")
        pipeline.check(self.images.shape[1:], where)

    def __len__(self):
        return len(self.split)

    @property
    def labels(self):
        return self.split.labels

    @property
    def class_names(self):
        return self.split.class_names

    def __getitem__(self, key):
        seed, indices = key
        rows = self.split.indices[indices]
        rng = np.random.default_rng(seed) if self.pipeline.random else None
        return self.pipeline(self.images[rows], rng), self.all_labels[rows]


def collate_batch(items):
    """The loader's collate function: each sampled item is already a whole batch."""
    (batch,) = items
    return batch
