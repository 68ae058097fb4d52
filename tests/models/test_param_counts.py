"""Parameter counts against every published figure (the figures of README.md, "Models").

``total`` counts BN running mean/variance as paddle.summary does; ``trainable``
leaves them out. Built under LazyGuard: shapes only, no initialisation."""
import numpy as np
import paddle
import pytest

import ppresvar


def counts(name, **kw):
    with paddle.LazyGuard():
        m = ppresvar.create_model(name, **kw)
    total = sum(int(np.prod(p.shape)) for p in m.parameters())
    trainable = sum(int(np.prod(p.shape)) for p in m.parameters() if not p.stop_gradient)
    return total, trainable


@pytest.mark.parametrize("name,kw,total,trainable", [
    ("resnet18", {}, 11183562, 11173962),            # seed 004, 10 classes
    ("resnet18_dyrelu_a", {}, 11360662, None),       # seed 004
    ("resnet18_dyrelu_b", {}, 12072626, None),
    ("resnet18_dyrelu_c", {}, 12076547, None),
    ("resnet50_nam", {"num_classes": 100}, 23818788, 23735460),  # seed 003
])
def test_seed_figures_exactly(name, kw, total, trainable):
    got_total, got_trainable = counts(name, **kw)
    assert got_total == total
    if trainable is not None:
        assert got_trainable == trainable


def test_dyrelu_counts_follow_the_per_site_formula():
    # DyReLU at the stem and twice per BasicBlock, reduction 8, K=2.
    sites = [64] + [c for c in (64, 128, 256, 512) for _ in range(4)]
    base = counts("resnet18")[0]
    a = sum(c * c // 8 + c // 8 + 4 * (c // 8) + 4 for c in sites)
    b = a + sum((c // 8 + 1) * 4 * (c - 1) for c in sites)  # fc2 outputs 2K per channel, not 2K
    c_ = b + sum(c + 1 for c in sites)
    assert counts("resnet18_dyrelu_a")[0] == base + a
    assert counts("resnet18_dyrelu_b")[0] == base + b
    assert counts("resnet18_dyrelu_c")[0] == base + c_


@pytest.mark.parametrize("depth,paper", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6)])
def test_cifar_resnets_within_2_percent_of_he_et_al(depth, paper):
    assert abs(counts("resnet%d" % depth)[1] / paper - 1) < 0.02


@pytest.mark.parametrize("depth,paper", [(50, 35.7e6), (101, 63.6e6), (152, 86.6e6), (200, 93.2e6),
                                         (270, 129.9e6), (350, 164.0e6), (420, 191.9e6)])
def test_resnet_rs_within_half_a_percent_of_the_paper(depth, paper):
    assert abs(counts("resnetrs%d" % depth)[1] / paper - 1) < 0.005


def test_lazy_and_eager_builds_count_the_same():
    m = ppresvar.create_model("resnet20")
    assert sum(int(np.prod(p.shape)) for p in m.parameters()) == counts("resnet20")[0]
