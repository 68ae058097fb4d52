"""Shared building blocks against plain numpy references: the option A
shortcut (He et al. 2015), Squeeze-and-Excitation (Hu et al. 2018), stochastic
depth (Huang et al. 2016) and the ResNet weight initialisation (He et al.
2015b). Seed defects covered here (README.md, "What was wrong in the seeds"): the ResNet-RS
drop rate named a survival probability, an initialiser built and thrown
away, and a channel pad that crashed oneDNN in Paddle Inference.
"""
import functools
import inspect
import json
import os

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppresvar
from ppresvar.layers import DropPath, SqueezeExcite, drop_path
from ppresvar.models.resnet import (BasicBlock, Bottleneck, ResNet, ZeroPadShortcut,
                                    drop_path_rates, make_shortcut)


def rand_x(*shape):
    return np.random.randn(*shape).astype("float32")


def run(layer, x):
    return layer(paddle.to_tensor(x)).numpy()


# ------------------------------------------------------- option A shortcut

def np_option_a(x, out_channels, stride):
    """He et al. 2015: identity on a stride-subsampled grid, extra channels zero."""
    sub = x[:, :, ::stride, ::stride]
    b, c, h, w = sub.shape
    return np.concatenate([sub, np.zeros((b, out_channels - c, h, w), x.dtype)], axis=1)


@pytest.mark.parametrize("cin,cout,stride,hw", [(4, 8, 2, (6, 6)), (4, 8, 2, (5, 7)),
                                                 (3, 3, 2, (4, 4)), (4, 6, 1, (3, 3)),
                                                 (5, 5, 1, (2, 2)), (2, 4, 2, (1, 1))])
def test_option_a_shortcut(cin, cout, stride, hw):
    x = rand_x(2, cin, *hw)
    y = run(ZeroPadShortcut(cin, cout, stride), x)
    np.testing.assert_array_equal(y, np_option_a(x, cout, stride))


def test_option_a_matches_the_strided_conv_grid():
    """Its output grid is the one a stride-2, padding-1 3x3 conv gives, odd sizes too."""
    for h in (5, 6, 7):
        x = paddle.to_tensor(rand_x(1, 4, h, h))
        conv = nn.Conv2D(4, 8, 3, stride=2, padding=1)
        assert ZeroPadShortcut(4, 8, 2)(x).shape == conv(x).shape


def test_option_a_refuses_impossible_widths():
    with pytest.raises(ValueError):
        ZeroPadShortcut(8, 4, 2)       # would need to drop channels
    with pytest.raises(ValueError):
        ZeroPadShortcut(4, 12, 2)      # more zeros than channels


def test_make_shortcut_kinds():
    assert isinstance(make_shortcut("A", 4, 8, 2, 0.9), ZeroPadShortcut)
    with pytest.raises(ValueError):
        make_shortcut("C", 4, 8, 2, 0.9)
    d = make_shortcut("D", 4, 8, 2, 0.9)                 # ResNet-D: avg-pool 2x2, 1x1 conv, BN
    assert isinstance(d[0], nn.AvgPool2D) and isinstance(d[1], nn.Conv2D)
    x = rand_x(1, 4, 4, 4)
    d.eval()
    pooled = x.reshape(1, 4, 2, 2, 2, 2).mean(axis=(3, 5))
    conv = np.einsum("bchw,oc->bohw", pooled, d[1].weight.numpy()[:, :, 0, 0])
    bn = d[2]
    ref = (conv - bn._mean.numpy()[None, :, None, None]) / np.sqrt(
        bn._variance.numpy()[None, :, None, None] + bn._epsilon)
    ref = ref * bn.weight.numpy()[None, :, None, None] + bn.bias.numpy()[None, :, None, None]
    np.testing.assert_allclose(run(d, x), ref, rtol=1e-5, atol=1e-5)


def _to_static(layer, spec):
    kw = {"input_spec": spec}
    fn = paddle.jit.to_static
    if "full_graph" in inspect.signature(fn).parameters or "full_graph" in (fn.__doc__ or ""):
        kw["full_graph"] = True
    return paddle.jit.to_static(layer, **kw)


def _walk_pir_ops(node, names):
    if isinstance(node, dict):
        for op in node.get("ops", []) if isinstance(node.get("ops"), list) else []:
            if isinstance(op, dict) and isinstance(op.get("#"), str):
                names.append(op["#"].split(".", 1)[-1])      # "1.conv2d" -> "conv2d"
        for v in node.values():
            _walk_pir_ops(v, names)
    elif isinstance(node, list):
        for v in node:
            _walk_pir_ops(v, names)


def exported_op_types(layer, spec, prefix):
    """Op types of the inference program ``paddle.jit.save`` writes: the PIR
    ``.json`` program of paddle 3, or the ``.pdmodel`` ProgramDesc of 2.x."""
    layer.eval()
    paddle.jit.save(_to_static(layer, spec), prefix)
    if os.path.exists(prefix + ".json"):
        with open(prefix + ".json") as f:
            program = json.load(f)
        names = []
        _walk_pir_ops(program, names)
        return names
    from paddle.base import core
    with open(prefix + ".pdmodel", "rb") as f:
        desc = core.ProgramDesc(f.read())
    return [desc.block(i).op(j).type() for i in range(desc.num_blocks())
            for j in range(desc.block(i).op_size())]


class _PadShortcut(nn.Layer):
    """Option A written with F.pad on the channel axis (the crashing form)."""

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], [0, 0, 0, 4, 0, 0, 0, 0])


def test_exported_resnet20_has_no_pad_op(tmp_path):
    spec = [paddle.static.InputSpec([None, 3, 32, 32], "float32")]
    ops = exported_op_types(ppresvar.create_model("resnet20"), spec, str(tmp_path / "r20" / "model"))
    assert ops.count("conv2d") == 19 and "concat" in ops      # the listing is real
    assert not [op for op in ops if op.startswith("pad")], sorted(set(ops))
    # The check does see a pad where there is one.
    pad_ops = exported_op_types(_PadShortcut(), [paddle.static.InputSpec([None, 4, 8, 8], "float32")],
                                str(tmp_path / "pad" / "model"))
    assert [op for op in pad_ops if op.startswith("pad")]


# --------------------------------------------------------------------- SE

def np_se(x, layer):
    x = x.astype(np.float64)
    w1 = layer.reduce.weight.numpy().astype(np.float64)[:, :, 0, 0]     # (rd, C)
    w2 = layer.expand.weight.numpy().astype(np.float64)[:, :, 0, 0]     # (C, rd)
    b1 = layer.reduce.bias.numpy() if layer.reduce.bias is not None else 0.0
    b2 = layer.expand.bias.numpy() if layer.expand.bias is not None else 0.0
    s = x.mean(axis=(2, 3))
    e = 1.0 / (1.0 + np.exp(-(np.maximum(s @ w1.T + b1, 0.0) @ w2.T + b2)))
    return x * e[:, :, None, None]


def _randomize(layer):
    for p in layer.parameters():
        p.set_value(np.random.uniform(-0.8, 0.8, p.shape).astype("float32"))
    return layer


@pytest.mark.parametrize("c,ratio,bias,rd", [(16, 0.25, True, 4), (8, 0.5, False, 4), (2, 0.25, True, 1)])
def test_squeeze_excite(c, ratio, bias, rd):
    layer = _randomize(SqueezeExcite(c, rd_ratio=ratio, bias=bias))
    assert layer.reduce.weight.shape[0] == rd
    x = rand_x(3, c, 4, 5)
    np.testing.assert_allclose(run(layer, x), np_se(x, layer), rtol=1e-5, atol=1e-6)


def test_squeeze_excite_zero_expand_halves_the_input():
    layer = SqueezeExcite(8)
    layer.expand.weight.set_value(np.zeros(layer.expand.weight.shape, "float32"))
    layer.expand.bias.set_value(np.zeros(layer.expand.bias.shape, "float32"))
    x = rand_x(2, 8, 3, 3)
    np.testing.assert_allclose(run(layer, x), 0.5 * x, rtol=1e-6)


def test_resnet_rs_se_reduces_the_4f_output_to_f():
    """ResNet-RS: SE ratio 0.25 on a Bottleneck's 4f outputs -> f channels."""
    blk = Bottleneck(64, 16, attn_layer=functools.partial(SqueezeExcite, rd_ratio=0.25),
                     shortcut=make_shortcut("D", 64, 64, 1, 0.9))
    assert blk.attn.reduce.weight.shape[:2] == [16, 64]


# -------------------------------------------------------------- drop path

def test_drop_path_is_identity_in_eval_and_at_zero():
    x = paddle.to_tensor(rand_x(8, 3, 2, 2))
    layer = DropPath(0.5)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    np.testing.assert_array_equal(drop_path(x, 0.0, training=True).numpy(), x.numpy())


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_drop_path_drops_whole_samples_at_rate_p(p):
    """A fraction p of samples (not 1-p: p is a drop rate) is zeroed whole; the
    others are scaled by exactly 1/(1-p)."""
    n = 4000
    x = np.random.uniform(0.5, 1.5, (n, 2, 2, 2)).astype("float32")
    layer = DropPath(p)
    layer.train()
    y = run(layer, x)
    dropped = np.all(y == 0, axis=(1, 2, 3))
    kept = ~dropped
    np.testing.assert_allclose(y[kept], x[kept] / (1.0 - p), rtol=1e-6)
    assert np.all(np.all(y != 0, axis=(1, 2, 3)) == kept)         # never partly dropped
    sd = np.sqrt(n * p * (1 - p))
    assert abs(dropped.sum() - n * p) < 4 * sd
    assert abs(dropped.sum() - n * (1 - p)) > 4 * sd or p == 0.5  # not a survival probability


def test_drop_path_refuses_bad_rates():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            DropPath(bad)


def test_drop_path_rates_stage_schedule():
    """ResNet-RS / seed 002: rate*(s+2)/5 for every block of stage s (4 stages)."""
    rates = drop_path_rates(0.2, [3, 4, 6, 3], "stage")
    expected = [0.2 * (s + 2) / 5 for s, n in enumerate([3, 4, 6, 3]) for _ in range(n)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    np.testing.assert_allclose(sorted(set(np.round(rates, 12))), [0.08, 0.12, 0.16, 0.2])
    assert max(rates) <= 0.2            # a drop rate: 0.2 drops ~20%, never 80%


def test_drop_path_rates_linear_schedule():
    rates = drop_path_rates(0.1, [2, 2, 2, 2], "linear")
    np.testing.assert_allclose(rates, np.linspace(0.0, 0.1, 8), rtol=1e-12, atol=1e-15)
    assert drop_path_rates(0.1, [1], "linear") == [0.0]
    with pytest.raises(ValueError):
        drop_path_rates(0.1, [2], "cosine")


@pytest.fixture(scope="module")
def rs50():
    paddle.seed(0)
    return ppresvar.create_model("resnetrs50", num_classes=10, bn_momentum=0.99, drop_path_rate=0.2)


def test_resnetrs50_drop_rates_and_bn_momentum(rs50):
    blocks = [b for stage in rs50.stages for b in stage]
    assert [len(s) for s in rs50.stages] == [3, 4, 6, 3]
    got = [b.drop_path.drop_prob for b in blocks]
    np.testing.assert_allclose(got, drop_path_rates(0.2, [3, 4, 6, 3], "stage"), rtol=1e-12)
    bns = [m for m in rs50.sublayers() if isinstance(m, nn.layer.norm._BatchNormBase)]
    assert len(bns) >= 3 * 16 + 4 + 4                          # blocks, stem, projections
    assert all(abs(bn._momentum - 0.99) < 1e-12 for bn in bns)


# ------------------------------------------------------------------- init

def _convs(model):
    return [m for m in model.sublayers() if isinstance(m, nn.Conv2D)]


def test_conv_init_is_kaiming_fan_out():
    model = ppresvar.create_model("resnet20")
    convs = _convs(model)
    assert len(convs) == 19
    for conv in convs:
        w = conv.weight.numpy()
        o, i, kh, kw = w.shape
        target = np.sqrt(2.0 / (o * kh * kw))
        assert abs(w.std() / target - 1) < 0.15, (w.shape, w.std(), target)
        assert abs(w.mean()) < 4 * target / np.sqrt(w.size)
    # The stem conv 3 -> 16 is where fan-out and Paddle's default (fan-in) part.
    stem = model.stem[0].weight.numpy()
    default = nn.Conv2D(3, 16, 3, bias_attr=False).weight.numpy()
    assert stem.shape == default.shape
    assert abs(np.sqrt(2.0 / (3 * 9)) / np.sqrt(2.0 / (16 * 9)) - 1) > 0.5
    assert abs(default.std() / stem.std() - 1) > 0.5            # not left at the default


def test_seed_style_initialiser_would_not_count():
    """The RiR seed built ``KaimingNormal(m.weight)`` and dropped it; the
    default init it left is clearly apart from fan-out Kaiming."""
    conv = nn.Conv2D(3, 16, 3, bias_attr=False)
    before = conv.weight.numpy().copy()
    made = nn.initializer.KaimingNormal(conv.weight)      # the seed's call: builds an initializer...
    assert isinstance(made, nn.initializer.KaimingNormal)
    np.testing.assert_array_equal(conv.weight.numpy(), before)  # ...and applies nothing
    assert abs(before.std() / np.sqrt(2.0 / (16 * 9)) - 1) > 0.5
    nn.initializer.KaimingNormal()(conv.weight)           # applied, as ppresvar does: the weights change
    assert np.abs(conv.weight.numpy() - before).max() > 0


def test_bn_init_and_zero_init_last():
    plain = ppresvar.create_model("resnet20")
    for m in plain.sublayers():
        if isinstance(m, nn.BatchNorm2D):
            assert np.all(m.weight.numpy() == 1) and np.all(m.bias.numpy() == 0)
    zeroed = ppresvar.create_model("resnet20", zero_init_last=True)
    last = set()
    for stage in zeroed.stages:
        for blk in stage:
            assert isinstance(blk, BasicBlock)
            assert np.all(blk.bn2.weight.numpy() == 0)
            last.add(id(blk.bn2))
    assert len(last) == 9
    for m in zeroed.sublayers():
        if isinstance(m, nn.BatchNorm2D) and id(m) not in last:
            assert np.all(m.weight.numpy() == 1)
        if isinstance(m, nn.BatchNorm2D):
            assert np.all(m.bias.numpy() == 0)


def test_zero_init_last_bottleneck_keeps_shortcut_bn():
    model = ResNet(Bottleneck, [1, 1], num_classes=3, widths=(4, 8), zero_init_last=True)
    for stage in model.stages:
        for blk in stage:
            assert np.all(blk.bn3.weight.numpy() == 0)
            assert np.all(blk.bn1.weight.numpy() == 1) and np.all(blk.bn2.weight.numpy() == 1)
            assert np.all(blk.shortcut[-1].weight.numpy() == 1)
