"""Soft-target cross entropy with label smoothing, the NAM sparsity penalty,
and metrics weighted by samples."""
import inspect

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppresvar.engine.losses import TrainLoss, soft_cross_entropy, to_soft_targets
from ppresvar.engine.metrics import MetricSums, topk_correct
from ppresvar.layers.nam import NAM


def _logits(b=5, k=4, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).randn(b, k).astype("float32"))


def _np_ce(logits, target):
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-(target * logp).sum(1).mean())


def test_hard_labels_equal_paddle_cross_entropy():
    logits, labels = _logits(), paddle.to_tensor([0, 3, 1, 1, 2], dtype="int64")
    ours = float(soft_cross_entropy(logits, labels))
    assert ours == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)


def test_label_smoothing_on_soft_targets():
    logits = _logits()
    soft = np.random.RandomState(1).dirichlet(np.ones(4), size=5).astype("float32")
    eps = 0.1
    expected = _np_ce(logits.numpy(), (1 - eps) * soft + eps / 4)
    got = float(soft_cross_entropy(logits, paddle.to_tensor(soft), label_smoothing=eps))
    assert got == pytest.approx(expected, rel=1e-5)
    if "label_smoothing" in inspect.signature(F.cross_entropy).parameters:
        ref = F.cross_entropy(logits, paddle.to_tensor(soft), soft_label=True, label_smoothing=eps)
        assert got == pytest.approx(float(ref), rel=1e-5)


def test_seed_label_smoothing_formula_matches_for_hard_labels():
    # the seeds' (1-eps) * nll + eps * mean(-log p) is the same loss for hard labels
    logits, labels = _logits(), np.array([0, 3, 1, 1, 2])
    logp = F.log_softmax(logits, axis=-1).numpy()
    seed = np.mean(0.9 * -logp[np.arange(5), labels] + 0.1 * -logp.mean(1))
    got = float(soft_cross_entropy(logits, paddle.to_tensor(labels), label_smoothing=0.1))
    assert got == pytest.approx(seed, rel=1e-5)


def test_nam_penalty_is_added_for_nam_models_only():
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Conv2D(3, 6, 1), NAM(6))
    model[1].channel.bn.weight.set_value(np.linspace(-1, 2, 6).astype("float32"))
    logits, labels = _logits(2, 6), paddle.to_tensor([1, 2], dtype="int64")
    base = float(TrainLoss(0.0, 0.0)(logits, labels, model))
    with_penalty = float(TrainLoss(0.0, 1e-2)(logits, labels, model))
    assert with_penalty - base == pytest.approx(1e-2 * np.abs(np.linspace(-1, 2, 6)).sum(), rel=1e-5)
    plain = paddle.nn.Sequential(paddle.nn.Conv2D(3, 6, 1))
    assert float(TrainLoss(0.0, 1e-2)(logits, labels, plain)) == pytest.approx(base)
    # its gradient on the NAM scales is weight * sign(gamma), the official code's subgradient
    model.clear_gradients()
    penalty = TrainLoss(0.0, 1e-2)(logits, labels, model) - TrainLoss(0.0, 0.0)(logits, labels, model)
    penalty.backward()
    np.testing.assert_allclose(model[1].channel.bn.weight.grad.numpy(),
                               1e-2 * np.sign(np.linspace(-1, 2, 6)), rtol=1e-5)


def test_topk_correct():
    logits = paddle.to_tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    labels = paddle.to_tensor([1, 2, 1], dtype="int64")
    assert topk_correct(logits, labels, (1, 2, 5)) == [1, 3, 3]


def test_accuracy_is_weighted_by_samples_not_batches():
    # the seeds averaged per-batch means: a full batch all right and a last
    # batch of 16 all wrong gave 50%; the true figure is 128/144
    sums = MetricSums((1,))
    sums.update(0.5, [128], 128)
    sums.update(2.0, [0], 16)
    assert sums.accuracy(1) == pytest.approx(128 / 144.0)
    assert sums.loss == pytest.approx((0.5 * 128 + 2.0 * 16) / 144.0)


def test_losses_are_accumulated_as_python_floats():
    # the seeds' `train_loss += loss` kept every step's graph alive
    sums = MetricSums((1,))
    with pytest.raises(TypeError):
        sums.update(paddle.to_tensor(1.0), [1], 1)


def test_soft_targets():
    t = to_soft_targets(paddle.to_tensor([2, 0], dtype="int64"), 3).numpy()
    assert np.array_equal(t, [[0, 0, 1], [1, 0, 0]])
