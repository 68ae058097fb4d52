"""Metrics summed over samples, never averaged over batches.

The seeds averaged per-batch accuracies, so a last batch of 16 images
weighed as much as a full one of 128; here every figure is a sum over
images divided by the number of images (also across data-parallel ranks).
"""
import math

import paddle

__all__ = ["topk_correct", "MetricSums"]


def topk_correct(logits, labels, topk=(1, 5)):
    """Counts of samples whose label is among the top-k logits, one Python
    int per k (k above the class count counts every sample)."""
    k_max = min(max(topk), logits.shape[-1])
    _, pred = paddle.topk(logits.astype("float32"), k=k_max, axis=-1)
    hits = paddle.cast(pred == labels.reshape([-1, 1]).astype(pred.dtype), "float32")
    cum = paddle.cumsum(hits, axis=-1)           # cum[:, j]: label within the top j+1
    counts = paddle.sum(cum, axis=0).numpy()
    return [int(round(float(counts[min(k, k_max) - 1]))) for k in topk]


class MetricSums(object):
    """Running sums of loss x samples and top-k hits, as Python numbers (no
    tensor, so no graph, is kept)."""

    def __init__(self, topk=(1, 5)):
        self.topk = tuple(topk)
        self.loss_sum = 0.0
        self.count = 0
        self.correct = [0] * len(self.topk)

    def update(self, loss_mean, correct, n):
        """``loss_mean``: the batch's mean loss (a float); ``correct``: hits
        per k; ``n``: the batch's samples."""
        if not isinstance(loss_mean, float):
            raise TypeError("MetricSums takes the loss as a Python float, got %s" % type(loss_mean).__name__)
        self.loss_sum += loss_mean * n
        self.count += int(n)
        self.correct = [c + int(h) for c, h in zip(self.correct, correct)]

    def as_list(self):
        return [self.loss_sum, float(self.count)] + [float(c) for c in self.correct]

    def load_list(self, values):
        self.loss_sum, count = float(values[0]), values[1]
        self.count = int(round(count))
        self.correct = [int(round(v)) for v in values[2:]]

    def all_reduce(self):
        """Sum over data-parallel ranks (a no-op in one process)."""
        from .distributed import all_reduce_sum

        self.load_list(all_reduce_sum(self.as_list()))
        return self

    @property
    def loss(self):
        return self.loss_sum / self.count if self.count else math.nan

    def accuracy(self, k):
        if not self.count:
            return math.nan
        return self.correct[self.topk.index(k)] / float(self.count)

    def result(self, prefix=""):
        out = {prefix + "loss": self.loss}
        for k in self.topk:
            out["%stop%d" % (prefix, k)] = self.accuracy(k)
        out[prefix + "samples"] = self.count
        return out
