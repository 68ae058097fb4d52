"""Mixup/CutMix as batch operations with soft targets, and the sharded,
epoch-seeded sampler."""
import numpy as np
import paddle
import pytest

from ppresvar.data.loader import ShardedBatchSampler, derive_seed
from ppresvar.data.mixing import build_batch_transforms
from ppresvar.engine.losses import to_soft_targets
from ppresvar.errors import ConfigError


def _batch(b=6, k=4):
    x = paddle.to_tensor(np.random.RandomState(0).randn(b, 3, 8, 8).astype("float32"))
    labels = paddle.to_tensor(np.arange(b) % k, dtype="int64")
    return x, to_soft_targets(labels, k)


def test_mixup_mixes_images_and_labels_with_one_lambda():
    x, y = _batch()
    mixer = build_batch_transforms([{"Mixup": {"alpha": 1.0}}])
    mx, my = mixer(x, y, np.random.RandomState(7))
    # replay the draws: prob check, permutation, lambda
    rng = np.random.RandomState(7)
    rng.rand()
    perm = rng.permutation(6)
    lam = rng.beta(1.0, 1.0)
    np.testing.assert_allclose(mx.numpy(), lam * x.numpy() + (1 - lam) * x.numpy()[perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(my.numpy(), lam * y.numpy() + (1 - lam) * y.numpy()[perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(my.numpy().sum(1), 1.0, rtol=1e-6)
    assert 0 < lam < 1 and not np.allclose(mx.numpy(), x.numpy())


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area():
    x, y = _batch()
    mixer = build_batch_transforms([{"Cutmix": {"alpha": 1.0}}])
    mx, my = mixer(x, y, np.random.RandomState(3))
    changed = (mx.numpy() != x.numpy()).any(axis=(0, 1))  # the pasted box (H, W)
    area = changed.mean()
    lam = 1 - area
    # each row keeps lam of its own label
    own = (my.numpy() * y.numpy()).sum(1)
    perm_same = own > 0.999  # rows mixed with themselves
    assert np.allclose(own[~perm_same], lam, atol=1e-5)
    rows, cols = np.where(changed)
    if len(rows):  # a rectangle
        assert changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_mixing_repeats_with_the_same_generator():
    x, y = _batch()
    mixer = build_batch_transforms([{"Mixup": {"alpha": 0.4}}, {"Cutmix": {"alpha": 1.0}}])
    a = mixer(x, y, np.random.RandomState(11))
    b = mixer(x, y, np.random.RandomState(11))
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())


def test_prob_zero_leaves_the_batch():
    x, y = _batch()
    mx, my = build_batch_transforms([{"Mixup": {"alpha": 1.0, "prob": 0.0}}])(x, y, np.random.RandomState(0))
    assert mx is x and my is y


@pytest.mark.parametrize("ops, word", [([{"MixUp": {}}], "Mixup"), ([{"Mixup": {"alhpa": 1}}], "alpha"),
                                       ([{"Mixup": {"alpha": -1}}], "Mixup"), ({"Mixup": {}}, "list")])
def test_bad_batch_transforms(ops, word):
    with pytest.raises(ConfigError) as e:
        build_batch_transforms(ops)
    assert word in str(e.value)


def test_sampler_order_depends_on_seed_and_epoch_only():
    s = ShardedBatchSampler(50, 8, shuffle=True, seed=1)
    s.set_epoch(1)
    e1 = list(s)
    s.set_epoch(2)
    e2 = list(s)
    s.set_epoch(1)
    assert list(s) == e1 and e1 != e2
    assert sorted(i for b in e1 for i in b) == list(range(50)) and len(e1) == len(s) == 7
    s.drop_last = True
    assert len(list(s)) == len(s) == 6


def test_sampler_shards():
    train = [ShardedBatchSampler(11, 4, shuffle=True, seed=0, rank=r, world_size=2, pad=True) for r in (0, 1)]
    shards = [[i for b in s for i in b] for s in train]
    assert len(shards[0]) == len(shards[1]) == 6 and len(train[0]) == len(train[1])  # padded to equal steps
    assert set(shards[0]) | set(shards[1]) == set(range(11))
    ev = [ShardedBatchSampler(11, 4, rank=r, world_size=2, pad=False) for r in (0, 1)]
    shards = [[i for b in s for i in b] for s in ev]
    assert sorted(shards[0] + shards[1]) == list(range(11))  # each image exactly once


def test_derive_seed_is_stable():
    assert derive_seed(42, "order", 3) == derive_seed(42, "order", 3)
    assert derive_seed(42, "order", 3) != derive_seed(42, "order", 4)
    assert 0 <= derive_seed("x") < 2 ** 31
