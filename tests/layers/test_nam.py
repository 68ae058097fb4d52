"""NAM (Liu et al. 2021) against numpy references written from the paper,
plus the NAM defects of seed 003 (README.md, "What was wrong in the seeds"): the missing sparsity
penalty, and the missing pixel branch / ignored ``no_spatial``.

Paper, for x of shape (B, C, H, W):
  channel (eq. 2): M_c = sigmoid(W_gamma * BN(x)) * x, W_gamma = |gamma_i| / sum_j |gamma_j|,
                   BN over channels (statistics over B, H, W);
  pixel   (eq. 3): M_s = sigmoid(W_lambda * BN_s(x)) * x, BN_s a "pixel normalisation":
                   one feature per position (statistics over B and C), W_lambda likewise
                   from its scales lambda;
  loss    (eq. 4): + p * sum |gamma| (+ p * sum |lambda|) over the NAM normalisations.
Training mode normalises with the batch statistics (biased variance), eval
mode with the running statistics.
"""
import functools

import numpy as np
import paddle
import pytest

import ppresvar
from ppresvar.layers import NAM, NAMChannel, NAMSpatial, nam_sparsity_penalty
from ppresvar.layers.nam import nam_scales
from ppresvar.models.resnet import BasicBlock, Bottleneck, ResNet


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def f64(t):
    return t.numpy().astype(np.float64)


def randomize_bn(bn, size):
    """Scales of both signs, shifts and running statistics away from 1 / 0."""
    bn.weight.set_value(np.random.uniform(0.2, 2.0, size).astype("float32")
                        * np.random.choice([-1.0, 1.0], size).astype("float32"))
    bn.bias.set_value(np.random.uniform(-1, 1, size).astype("float32"))
    bn._mean.set_value(np.random.uniform(-1, 1, size).astype("float32"))
    bn._variance.set_value(np.random.uniform(0.5, 2.0, size).astype("float32"))


def np_channel(x, bn, training):
    x = x.astype(np.float64)
    gamma, beta, eps = f64(bn.weight), f64(bn.bias), float(bn._epsilon)
    if training:
        mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))       # biased
    else:
        mu, var = f64(bn._mean), f64(bn._variance)
    c = (slice(None), None, None)
    bn_x = gamma[c] * (x - mu[c]) / np.sqrt(var[c] + eps) + beta[c]
    w = np.abs(gamma) / np.abs(gamma).sum()
    return np_sigmoid(bn_x * w[c]) * x


def np_pixel(x, bn, training):
    x = x.astype(np.float64)
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)                                      # one feature per position
    lam, beta, eps = f64(bn.weight), f64(bn.bias), float(bn._epsilon)
    if training:
        mu, var = flat.mean(axis=(0, 1)), flat.var(axis=(0, 1))       # over batch and channels
    else:
        mu, var = f64(bn._mean), f64(bn._variance)
    bn_x = lam * (flat - mu) / np.sqrt(var + eps) + beta
    wl = np.abs(lam) / np.abs(lam).sum()
    return (np_sigmoid(bn_x * wl) * flat).reshape(b, c, h, w)


def rand_x(*shape):
    return (np.random.randn(*shape) * 1.5 + 0.3).astype("float32")


def run(layer, x):
    return layer(paddle.to_tensor(x)).numpy()


# ------------------------------------------------------------- the branches

@pytest.mark.parametrize("training", [True, False])
def test_channel_branch(training):
    layer = NAMChannel(6)
    randomize_bn(layer.bn, 6)
    layer.train() if training else layer.eval()
    x = rand_x(3, 6, 4, 5)
    ref = np_channel(x, layer.bn, training)      # before forward moves the running stats
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_pixel_branch(training):
    layer = NAMSpatial((3, 4))
    randomize_bn(layer.bn, 12)
    layer.train() if training else layer.eval()
    x = rand_x(2, 5, 3, 4)
    ref = np_pixel(x, layer.bn, training)
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)


def test_pixel_statistics_are_per_position():
    """A position-dependent offset is removed by the pixel normalisation, but
    not by a per-channel one: the two branches are different maps."""
    layer = NAMSpatial((2, 3))
    randomize_bn(layer.bn, 6)
    x = rand_x(4, 3, 2, 3) + np.arange(6, dtype="float32").reshape(1, 1, 2, 3) * 10
    np.testing.assert_allclose(run(layer, x), np_pixel(x, layer.bn, True), rtol=1e-5, atol=1e-5)
    chan = NAMChannel(3)
    assert not np.allclose(run(chan, x), run(layer, x), atol=1e-3)


@pytest.mark.parametrize("training", [True, False])
def test_nam_is_channel_then_pixel(training):
    layer = NAM(4, spatial_size=(3, 3), spatial=True)
    randomize_bn(layer.channel.bn, 4)
    randomize_bn(layer.pixel.bn, 9)
    layer.train() if training else layer.eval()
    x = rand_x(2, 4, 3, 3)
    ref = np_pixel(np_channel(x, layer.channel.bn, training), layer.pixel.bn, training)
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)


def test_nam_without_pixel_branch_is_the_channel_branch():
    layer = NAM(4)
    assert layer.pixel is None
    randomize_bn(layer.channel.bn, 4)
    x = rand_x(2, 4, 3, 3)
    np.testing.assert_allclose(run(layer, x), np_channel(x, layer.channel.bn, True), rtol=1e-5, atol=1e-5)


def test_pixel_branch_needs_a_size():
    with pytest.raises(ValueError):
        NAM(4, spatial=True)


def test_one_position_and_one_channel():
    """Degenerate sizes: with a single weight, W = 1 (|g| / |g|)."""
    layer = NAM(1, spatial_size=(1, 1), spatial=True)
    randomize_bn(layer.channel.bn, 1)
    randomize_bn(layer.pixel.bn, 1)
    layer.eval()
    x = rand_x(3, 1, 1, 1)
    ref = np_pixel(np_channel(x, layer.channel.bn, False), layer.pixel.bn, False)
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ sparsity penalty

def _nam_layers(model):
    """The NAM attention of every block, found through the blocks."""
    return [blk.attn for stage in model.stages for blk in stage]


def test_sparsity_penalty_covers_nam_scales_only():
    model = ppresvar.create_model("resnet18_nam", nam_spatial=True)
    bns = [m for m in model.sublayers() if isinstance(m, (paddle.nn.BatchNorm2D, paddle.nn.BatchNorm1D))]
    for bn in bns:                                          # every BN scale distinct and signed
        bn.weight.set_value(np.random.uniform(-2, 2, bn.weight.shape).astype("float32"))
    nams = _nam_layers(model)
    assert len(nams) == 8 and all(isinstance(n, NAM) and n.pixel is not None for n in nams)
    nam_params = [n.channel.bn.weight for n in nams] + [n.pixel.bn.weight for n in nams]
    expected = 1e-3 * sum(np.abs(f64(g)).sum() for g in nam_params)
    everything = 1e-3 * sum(np.abs(f64(bn.weight)).sum() for bn in bns)
    assert everything > expected * 1.5                      # the other BNs would count

    penalty = nam_sparsity_penalty(model, 1e-3)
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)

    # Its gradient is the official code's subgradient weight * sign(gamma) on
    # the NAM scales, and nothing on any other BN.
    penalty.backward()
    nam_ids = {id(p) for p in nam_params}
    for g in nam_params:
        np.testing.assert_allclose(g.grad.numpy(), 1e-3 * np.sign(g.numpy()), rtol=1e-6)
    others = [bn.weight for bn in bns if id(bn.weight) not in nam_ids]
    assert len(others) == len(bns) - 16
    for g in others:
        assert g.grad is None or not np.any(g.grad.numpy())


def test_penalty_is_none_without_nam():
    assert nam_sparsity_penalty(ppresvar.create_model("resnet20")) is None


def test_nam_scales_follow_the_flag():
    with_pixel = ppresvar.create_model("resnet18_nam", nam_spatial=True)
    without = ppresvar.create_model("resnet18_nam", nam_spatial=False)
    assert len(nam_scales(with_pixel)) == 16
    assert len(nam_scales(without)) == 8
    assert not any(isinstance(m, NAMSpatial) for m in without.sublayers())


# -------------------------------------------------------------- placement

def test_spatial_flag_changes_the_network():
    """Seed 003 ignored ``no_spatial``: here the flag adds the pixel branch,
    and with every shared weight equal the outputs differ."""
    a = ppresvar.create_model("resnet18_nam", nam_spatial=True, input_size=16)
    b = ppresvar.create_model("resnet18_nam", nam_spatial=False, input_size=16)
    own = b.state_dict()
    b.set_state_dict({k: v for k, v in a.state_dict().items() if k in own})
    a.eval()
    b.eval()
    x = paddle.to_tensor(rand_x(2, 3, 16, 16))
    ya, yb = a(x).numpy(), b(x).numpy()
    assert np.all(np.isfinite(ya)) and np.abs(ya - yb).max() > 1e-4


def _check_block_placement(block, x_in):
    """Attention right after the block's last BN, before the addition."""
    calls, seen = [], {}

    def post(name):
        def hook(layer, inputs, output):
            calls.append(name)
            seen[name] = (inputs[0].numpy(), output.numpy())
        return hook

    last_bn = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    hooks = [last_bn.register_forward_post_hook(post("bn")),
             block.attn.register_forward_post_hook(post("attn")),
             block.act_out.register_forward_post_hook(post("act_out"))]
    try:
        out = block(x_in).numpy()
    finally:
        for h in hooks:
            h.remove()
    assert calls == ["bn", "attn", "act_out"]
    bn_out = seen["bn"][1]
    np.testing.assert_array_equal(seen["attn"][0], bn_out)
    nam = block.attn
    ref = np_channel(bn_out, nam.channel.bn, False)
    if nam.pixel is not None:
        ref = np_pixel(ref, nam.pixel.bn, False)
    np.testing.assert_allclose(seen["attn"][1], ref, rtol=1e-4, atol=1e-5)
    identity = x_in.numpy() if block.shortcut is None else block.shortcut(x_in).numpy()
    np.testing.assert_allclose(out, np.maximum(ref + identity, 0.0), rtol=1e-4, atol=1e-4)


def test_attention_after_last_bn_of_every_basic_block():
    model = ppresvar.create_model("resnet18_nam", nam_spatial=True, input_size=16)
    for m in model.sublayers():
        if isinstance(m, (NAMChannel, NAMSpatial)):
            randomize_bn(m.bn, m.bn.weight.shape[0])
    model.eval()
    x = paddle.to_tensor(rand_x(2, 3, 16, 16))
    with paddle.no_grad():
        x = model.stem(x)
        for stage in model.stages:
            for block in stage:
                _check_block_placement(block, x)
                x = block(x)


def test_attention_after_last_bn_of_a_bottleneck():
    model = ResNet(Bottleneck, [1, 1], num_classes=3, widths=(4, 8), input_size=8,
                   attn_layer=functools.partial(NAM, spatial=True))
    for m in model.sublayers():
        if isinstance(m, (NAMChannel, NAMSpatial)):
            randomize_bn(m.bn, m.bn.weight.shape[0])
    model.eval()
    with paddle.no_grad():
        x = model.stem(paddle.to_tensor(rand_x(2, 3, 8, 8)))
        for stage in model.stages:
            for block in stage:
                assert isinstance(block, Bottleneck) and not isinstance(block, BasicBlock)
                _check_block_placement(block, x)
                x = block(x)


# ----------------------------------- the gradient through W_gamma: flow or stop

def np_channel_of(x, gamma, beta, w_gamma):
    """The channel branch in training mode with its scales ``gamma`` and the
    weights ``w_gamma`` given apart, so each can be held fixed."""
    mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    c = (slice(None), None, None)
    bn_x = gamma[c] * (x - mu[c]) / np.sqrt(var[c] + 1e-5) + beta[c]
    return np_sigmoid(bn_x * w_gamma[c]) * x


@pytest.mark.parametrize("weight_grad", [True, False])
def test_channel_weight_gradient_flows_or_not(weight_grad):
    """weight_grad=True: d loss / d gamma includes the path through
    |gamma|/sum|gamma| (the seed, ppresvar's default); False: W_gamma is a
    constant of the step (the authors' ``.data``), gamma learns through the
    BN only. Both against central differences of the numpy formula."""
    np.random.seed(7)
    x = np.random.randn(4, 5, 3, 3)
    r = np.random.randn(4, 5, 3, 3)
    layer = NAMChannel(5, weight_grad=weight_grad)
    randomize_bn(layer.bn, 5)
    layer.train()
    gamma, beta = f64(layer.bn.weight), f64(layer.bn.bias)
    xt = paddle.to_tensor(x.astype("float32"))
    loss = paddle.sum(layer(xt) * paddle.to_tensor(r.astype("float32")))
    loss.backward()
    got = layer.bn.weight.grad.numpy().astype(np.float64)

    def weights(g):
        return np.abs(g) / np.abs(g).sum()

    fixed = weights(gamma)
    want = np.zeros(5)
    for i in range(5):
        d = np.zeros(5)
        d[i] = 1e-6
        up = np_channel_of(x, gamma + d, beta, weights(gamma + d) if weight_grad else fixed)
        down = np_channel_of(x, gamma - d, beta, weights(gamma - d) if weight_grad else fixed)
        want[i] = ((up - down) * r).sum() / 2e-6
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
    # the forward is the same either way, and the two gradients differ
    other = NAMChannel(5, weight_grad=not weight_grad)
    other.set_state_dict(layer.state_dict())
    other.train()
    np.testing.assert_allclose(other(xt).numpy(), layer(xt).numpy(), rtol=1e-6)
    loss2 = paddle.sum(other(xt) * paddle.to_tensor(r.astype("float32")))
    loss2.backward()
    assert np.abs(other.bn.weight.grad.numpy() - got).max() > 1e-3


def test_pixel_branch_and_models_take_the_option():
    """The pixel branch: the same output either way; without the weight path
    its scales' gradient is that of the BN alone, which differs."""
    paddle.seed(3)
    x = paddle.randn([2, 3, 2, 2])
    grads, outs = [], []
    for flag in (True, False):
        layer = NAMSpatial((2, 2), weight_grad=flag)
        layer.bn.weight.set_value(np.array([0.5, -1.5, 2.0, 1.0], "float32"))
        out = layer(x)
        paddle.sum(out * paddle.arange(24, dtype="float32").reshape([2, 3, 2, 2])).backward()
        outs.append(out.numpy())
        grads.append(layer.bn.weight.grad.numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)
    assert np.abs(grads[0] - grads[1]).max() > 1e-3
    for name in ("resnet18_nam", "resnet50_nam"):
        model = ppresvar.create_model(name, nam_weight_grad=False)
        flags = [m.weight_grad for m in model.sublayers() if isinstance(m, NAMChannel)]
        assert flags and not any(flags)
        assert all(m.weight_grad for m in ppresvar.create_model(name).sublayers() if isinstance(m, NAMChannel))
