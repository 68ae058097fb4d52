"""Dynamic ReLU (Chen et al. 2020) against a plain numpy reference written
from the paper's formulas, plus the two DyReLU defects of seed 004
(README.md, "What was wrong in the seeds"): DyReLU-A's coefficients broadcast onto the wrong axis,
and DyReLU-C's softmax over W only, stored on the layer in forward.

Paper notation, for input x of shape (B, C, H, W):
    theta   = mean over H, W of x                                (B, C)
    d       = 2 * sigmoid(fc2(relu(fc1(theta)))) - 1             residuals in [-1, 1]
    a_k     = alpha_k + lambda_a * da_k,  b_k = beta_k + lambda_b * db_k
    y       = max_k (a_k * x + b_k)
A: one (a_k, b_k) per sample; B: one per sample and channel; C: B's
residuals times pi(h, w) = min(gamma * softmax_{all H*W}(conv1x1(x) / tau), 1),
gamma = H*W / 3, tau = 10.

The fc2 output is read channel-major ((C, 2K) per sample: the K slopes, then
the K intercepts, of channel 0 first), the layout both the seed and the paper's
reference code use; any fixed layout is the same function class.
"""
import inspect

import numpy as np
import paddle
import pytest

from ppresvar.layers import DyReLU

TAU = 10.0


# ----------------------------------------------------------------- reference

def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_params(layer):
    """The layer's weights as float64 numpy arrays (Paddle Linear is [in, out])."""
    p = {
        "w1": layer.fc1.weight.numpy().astype(np.float64),
        "b1": layer.fc1.bias.numpy().astype(np.float64),
        "w2": layer.fc2.weight.numpy().astype(np.float64),
        "b2": layer.fc2.bias.numpy().astype(np.float64),
    }
    if layer.spatial is not None:
        p["wc"] = layer.spatial.weight.numpy().astype(np.float64).reshape(-1)  # (1, C, 1, 1) -> (C,)
        p["bc"] = float(layer.spatial.bias.numpy().reshape(-1)[0])
    return p


def np_hard_sigmoid(z):
    """relu6(z + 3) / 6: 0 below -3, 1 above 3, linear between."""
    return np.clip(z + 3.0, 0.0, 6.0) / 6.0


def np_residuals(x, p, gate="sigmoid"):
    theta = x.mean(axis=(2, 3))
    hidden = np.maximum(theta @ p["w1"] + p["b1"], 0.0)
    squash = np_hard_sigmoid if gate == "hard" else np_sigmoid
    return 2.0 * squash(hidden @ p["w2"] + p["b2"]) - 1.0


def np_softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_spatial_logits(x, p):
    """conv1x1(x) / tau, shape (B, H, W)."""
    return (np.einsum("bchw,c->bhw", x, p["wc"]) + p["bc"]) / TAU


def np_pi(x, p):
    """Paper: softmax over all H*W positions of each sample, gamma = H*W/3, clip at 1."""
    b, _, h, w = x.shape
    z = np_spatial_logits(x, p).reshape(b, h * w)
    return np.minimum(np_softmax(z, axis=1) * (h * w / 3.0), 1.0).reshape(b, h, w)


def np_dyrelu(x, p, mode, k=2, lambda_a=1.0, lambda_b=0.5, alpha=None, beta=None, pi_fn=np_pi, gate="sigmoid"):
    x = x.astype(np.float64)
    bsz, c, h, w = x.shape
    alpha = np.array(alpha if alpha is not None else [1.0] + [0.0] * (k - 1))
    beta = np.array(beta if beta is not None else [0.0] * k)
    d = np_residuals(x, p, gate)
    if mode == "A":
        d = d.reshape(bsz, 1, 2 * k, 1, 1)               # shared by channels and positions
    else:
        d = d.reshape(bsz, c, 2 * k, 1, 1)               # one set per channel
        if mode == "C":
            d = d * pi_fn(x, p)[:, None, None, :, :]     # per position too
    y = None
    for i in range(k):
        a_i = alpha[i] + lambda_a * d[:, :, i]
        b_i = beta[i] + lambda_b * d[:, :, k + i]
        z = a_i * x + b_i
        y = z if y is None else np.maximum(y, z)
    return y


def seed_dyrelu_a(x, p, k=2, lambda_a=1.0, lambda_b=0.5):
    """Seed 004's DyReLU-A broadcasting, emulated: the input is permuted to
    (H, W, B, C, 1) and multiplied by the (B, K) coefficients, so their batch
    axis lines up with the channel axis."""
    d = np_residuals(x.astype(np.float64), p)
    coef = d * np.array([lambda_a] * k + [lambda_b] * k) + np.array([1.0] + [0.0] * (2 * k - 1))
    x_perm = x.astype(np.float64).transpose(2, 3, 0, 1)[..., None]
    out = x_perm * coef[:, :k] + coef[:, k:]
    return out.max(axis=-1).transpose(2, 3, 0, 1)


def seed_pi(x, p):
    """Seed 004's DyReLU-C attention: F.softmax's default axis, the last (W) only."""
    _, _, h, w = x.shape
    return np.minimum(np_softmax(np_spatial_logits(x, p), axis=-1) * (h * w / 3.0), 1.0)


def randomize(layer, scale=0.5):
    """Non-trivial weights so that every residual and attention matters."""
    for prm in layer.parameters():
        prm.set_value(np.random.uniform(-scale, scale, prm.shape).astype("float32"))
    return layer


def run(layer, x):
    return layer(paddle.to_tensor(x.astype("float32"))).numpy()


def rand_x(*shape):
    return np.random.randn(*shape).astype("float32")


# --------------------------------------------------------------- the formula

@pytest.mark.parametrize("mode", ["A", "B", "C"])
@pytest.mark.parametrize("shape", [(3, 16, 4, 5), (16, 16, 3, 3), (1, 16, 2, 6), (2, 16, 1, 1)])
def test_matches_numpy_reference(mode, shape):
    """batch != channels, batch == channels, batch 1, and a 1x1 map (gamma = 1/3)."""
    layer = randomize(DyReLU(16, mode=mode, k=2, reduction=8, lambda_a=1.0, lambda_b=0.5))
    x = rand_x(*shape)
    np.testing.assert_allclose(run(layer, x), np_dyrelu(x, np_params(layer), mode), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_other_k_lambdas_and_initial_coefficients(mode):
    kw = dict(k=3, lambda_a=0.7, lambda_b=0.3, init_a=[1.0, 0.25, -0.5], init_b=[0.0, 0.1, -0.2])
    layer = randomize(DyReLU(8, mode=mode, reduction=4, **kw))
    x = rand_x(2, 8, 3, 4)
    ref = np_dyrelu(x, np_params(layer), mode, k=3, lambda_a=0.7, lambda_b=0.3,
                    alpha=kw["init_a"], beta=kw["init_b"])
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_k1_is_a_per_sample_affine_map(mode):
    layer = randomize(DyReLU(8, mode=mode, k=1, reduction=4, init_a=[1.0], init_b=[0.0]))
    x = rand_x(2, 8, 2, 3)
    np.testing.assert_allclose(run(layer, x), np_dyrelu(x, np_params(layer), mode, k=1),
                               rtol=1e-5, atol=1e-5)


def test_attention_is_a_softmax_over_all_positions():
    layer = randomize(DyReLU(8, mode="C", reduction=4), scale=2.0)
    for shape in [(2, 8, 3, 5), (2, 8, 1, 1), (1, 8, 6, 2)]:
        x = rand_x(*shape)
        pi = layer.spatial_attention(paddle.to_tensor(x)).numpy()
        assert pi.shape == (shape[0], 1, shape[2], shape[3])
        np.testing.assert_allclose(pi[:, 0], np_pi(x, np_params(layer)), rtol=1e-5, atol=1e-6)
        assert pi.max() <= 1.0


@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_zero_fc2_is_exactly_relu(mode):
    """Residuals 2*sigmoid(0)-1 = 0 leave a = (1, 0), b = (0, 0): max(x, 0)."""
    layer = DyReLU(16, mode=mode)
    layer.fc2.weight.set_value(np.zeros(layer.fc2.weight.shape, "float32"))
    layer.fc2.bias.set_value(np.zeros(layer.fc2.bias.shape, "float32"))
    x = rand_x(3, 16, 4, 5)
    np.testing.assert_array_equal(run(layer, x), np.maximum(x, 0.0))


@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_a_fresh_dyrelu_is_exactly_relu_until_trained(mode):
    """The default (init='relu'): a fresh layer is max(x, 0) for any input,
    with no weight set by hand. The seed's init ('random', paddle's default,
    the default before) is not: random residuals per image, the slow start of
    DyReLU-A in docs/reproductions.md."""
    paddle.seed(3)
    x = rand_x(3, 16, 4, 5) * 3.0
    near = DyReLU(16, mode=mode)
    np.testing.assert_array_equal(run(near, x), np.maximum(x, 0.0))
    np.testing.assert_array_equal(near.fc2.weight.numpy(), 0.0)
    seed_like = DyReLU(16, mode=mode, init="random")
    assert np.abs(run(seed_like, x) - np.maximum(x, 0.0)).max() > 1e-3
    # still the same function class: trained weights give the paper's formula
    randomize(near)
    np.testing.assert_allclose(run(near, x), np_dyrelu(x, np_params(near), mode), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_hard_sigmoid_gate_matches_numpy_reference(mode):
    """gate='hard': d = 2 relu6(z + 3) / 6 - 1; weights large enough that some
    z fall outside [-3, 3] (the clipped parts) and some inside."""
    layer = randomize(DyReLU(16, mode=mode, gate="hard", reduction=4), scale=1.5)
    x = rand_x(4, 16, 3, 5) * 2.0
    z = np.maximum(x.mean(axis=(2, 3)) @ np_params(layer)["w1"] + np_params(layer)["b1"], 0)
    z = z @ np_params(layer)["w2"] + np_params(layer)["b2"]
    assert (np.abs(z) > 3).any() and (np.abs(z) < 3).any()
    ref = np_dyrelu(x, np_params(layer), mode, gate="hard")
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)
    assert np.abs(ref - np_dyrelu(x, np_params(layer), mode)).max() > 1e-3   # not the sigmoid


def test_resnet18_with_relu_init_dyrelu_is_resnet18():
    """The model-level degenerate case: ResNet-18 DyReLU-A/B/C with
    dyrelu_init='relu' and ResNet-18's conv, BN and fc weights computes
    ResNet-18's logits at initialisation."""
    from ppresvar import create_model

    paddle.seed(0)
    ref = create_model("resnet18", widths=[8, 16, 16, 32])
    ref.eval()
    x = paddle.to_tensor(rand_x(2, 3, 16, 16))
    want = ref(x).numpy()
    for name in ("resnet18_dyrelu_a", "resnet18_dyrelu_b", "resnet18_dyrelu_c"):
        m = create_model(name, widths=[8, 16, 16, 32], reduction=4)   # the default start: ReLU
        m.set_state_dict(ref.state_dict())
        m.eval()
        np.testing.assert_allclose(m(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        DyReLU(16, init="zeros")
    with pytest.raises(ValueError):
        DyReLU(16, gate="tanh")
    with pytest.raises(ValueError):
        DyReLU(16, mode="D")
    with pytest.raises(ValueError):
        DyReLU(4, reduction=8)           # no hidden unit
    with pytest.raises(ValueError):
        DyReLU(16, k=2, init_a=[1.0])    # k values needed


# ------------------------------------------------------------ seed defects

def test_seed_a_broadcasting_is_wrong_when_batch_equals_channels():
    """Seed 004: the (B, K) coefficients meet the channel axis. With B == C it
    runs and is wrong; ours matches the paper."""
    layer = randomize(DyReLU(16, mode="A"), scale=1.0)
    x = rand_x(16, 16, 3, 3)
    p = np_params(layer)
    ref = np_dyrelu(x, p, "A")
    seed = seed_dyrelu_a(x, p)
    assert np.abs(seed - ref).max() > 1e-2
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)


def test_seed_a_broadcasting_fails_when_batch_differs_from_channels():
    layer = randomize(DyReLU(16, mode="A"))
    x = rand_x(3, 16, 2, 2)
    p = np_params(layer)
    with pytest.raises(ValueError):
        seed_dyrelu_a(x, p)                                 # a shape error in the seed
    np.testing.assert_allclose(run(layer, x), np_dyrelu(x, p, "A"), rtol=1e-5, atol=1e-5)


def test_seed_a_emulation_is_right_at_batch_one():
    """Why the seed's paddle.summary (batch 1) ran: B == 1 broadcasts correctly.
    This also checks that the emulation above is the seed's arithmetic."""
    layer = randomize(DyReLU(16, mode="A"))
    x = rand_x(1, 16, 3, 3)
    p = np_params(layer)
    np.testing.assert_allclose(seed_dyrelu_a(x, p), np_dyrelu(x, p, "A"), rtol=1e-12)


def test_seed_c_softmax_over_last_axis_differs_on_multi_row_input():
    layer = randomize(DyReLU(8, mode="C", reduction=4), scale=1.0)
    p = np_params(layer)
    x = rand_x(2, 8, 3, 5)                                  # non-square, several rows
    assert np.abs(seed_pi(x, p) - np_pi(x, p)).max() > 0.1
    seed_out = np_dyrelu(x, p, "C", pi_fn=seed_pi)
    ref = np_dyrelu(x, p, "C")
    assert np.abs(seed_out - ref).max() > 1e-3
    np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-5)
    # On a single row both softmaxes coincide, which is how the defect hid.
    x1 = rand_x(2, 8, 1, 5)
    np.testing.assert_allclose(seed_pi(x1, p), np_pi(x1, p), rtol=1e-12)


def _state(layer):
    """Everything a forward could leave behind on the layer tree."""
    snap = {}
    for name, m in layer.named_sublayers(include_self=True):
        snap[name] = (sorted(m.__dict__), sorted(m._buffers), sorted(m._parameters),
                      sorted(m._sub_layers))
    return snap


class _SeedLikeDyReLU(DyReLU):
    """Stores its attention map in forward, as seed 004's DyReLU-C did."""

    def forward(self, x):
        self.spatial_theta = self.spatial_attention(x)
        return super().forward(x)


@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_forward_keeps_no_state(mode):
    layer = randomize(DyReLU(8, mode=mode, reduction=4))
    before = _state(layer)
    buffers = {k: v.numpy().copy() for k, v in layer.named_buffers()}
    x = paddle.to_tensor(rand_x(2, 8, 3, 4))
    layer(x)
    layer.eval()
    layer(x)
    layer.train()
    assert _state(layer) == before
    for k, v in layer.named_buffers():
        np.testing.assert_array_equal(v.numpy(), buffers[k])


def test_state_check_catches_the_seed_behaviour():
    leaky = _SeedLikeDyReLU(8, mode="C", reduction=4)
    before = _state(leaky)
    leaky(paddle.to_tensor(rand_x(2, 8, 3, 4)))
    assert _state(leaky) != before


# ------------------------------------------------------- parameter counts

def _site_params(c, k=2, r=8):
    """Per DyReLU site, from the layer's definition (trainable; lambdas/init are buffers)."""
    a = c * c // r + c // r + 2 * k * c // r + 2 * k          # fc1 + fc2 (2K outputs)
    b = a + (c // r + 1) * 2 * k * (c - 1)                    # fc2 gives 2K per channel
    return {"A": a, "B": b, "C": b + c + 1}                   # + 1x1 conv C -> 1


@pytest.mark.parametrize("c", [16, 64, 512])
@pytest.mark.parametrize("mode", ["A", "B", "C"])
def test_parameter_count_per_site(mode, c):
    layer = DyReLU(c, mode=mode, k=2, reduction=8)
    n = sum(int(np.prod(p.shape)) for p in layer.parameters())
    assert n == _site_params(c)[mode]
    if mode == "A":
        assert n == c * c // 8 + c // 8 + 4 * c // 8 + 4


def test_site_counts_add_up_to_design_totals():
    """ResNet-18 (CIFAR stem) has DyReLU at the stem (64) and twice per
    BasicBlock: 5 sites of 64 channels, 4 each of 128, 256, 512. The sums are
    the differences of the seed's printed totals."""
    sites = [64] * 5 + [128] * 4 + [256] * 4 + [512] * 4
    total = {m: sum(_site_params(c)[m] for c in sites) for m in "ABC"}
    assert total["A"] == 11360662 - 11183562
    assert total["B"] == 12072626 - 11183562
    assert total["C"] == 12076547 - 11183562


# ----------------------------------------------------------------- export

def _to_static(layer, spec):
    kw = {"input_spec": spec}
    fn = paddle.jit.to_static
    if "full_graph" in inspect.signature(fn).parameters or "full_graph" in (fn.__doc__ or ""):
        kw["full_graph"] = True       # a whole-graph program (paddle 3 takes it as a keyword)
    return paddle.jit.to_static(layer, **kw)


def test_dyrelu_c_survives_jit_save_and_load(tmp_path):
    """Exported with free batch and spatial size; gamma = H*W/3 must follow
    the actual input, so two sizes are checked."""
    layer = randomize(DyReLU(8, mode="C", reduction=4))
    layer.eval()
    static = _to_static(layer, [paddle.static.InputSpec([None, 8, None, None], "float32")])
    path = str(tmp_path / "dyrelu_c")
    paddle.jit.save(static, path)
    loaded = paddle.jit.load(path)
    loaded.eval()
    for shape in [(3, 8, 3, 5), (1, 8, 2, 2)]:
        x = rand_x(*shape)
        ref = np_dyrelu(x, np_params(layer), "C")
        np.testing.assert_allclose(loaded(paddle.to_tensor(x)).numpy(), ref, rtol=1e-5, atol=1e-5)
