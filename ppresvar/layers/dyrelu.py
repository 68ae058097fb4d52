"""Dynamic ReLU (Chen et al. 2020, "Dynamic ReLU", arXiv:2003.10027).

``y_c = max_k (a_c^k(x) * x_c + b_c^k(x))`` with
``a^k = alpha^k + lambda_a * da^k(x)`` and ``b^k = beta^k + lambda_b * db^k(x)``,
where the residuals ``d = 2*sigmoid(fc2(relu(fc1(avgpool(x))))) - 1`` lie in [-1, 1].

* ``A``: the K coefficient pairs are shared by all channels and positions.
* ``B``: one set of K pairs per channel, shared over positions.
* ``C``: per channel and per position: B's residuals scaled by a spatial
  attention ``pi = min(gamma * softmax(conv1x1(x) / tau), 1)``, the softmax
  taken over all H*W positions, ``gamma = H*W / 3``.

Defaults follow the paper: K=2, reduction 8 (seed 004), lambda_a=1.0,
lambda_b=0.5, alpha=(1, 0), beta=(0, 0). The forward broadcasts
coefficients against NCHW input (no transposes, and for C no
(B, C, 2K, H, W) tensor) and keeps no state on ``self``.

Two choices the paper leaves open, as options:

* ``init``: ``'relu'`` (the default) zeroes the last coefficient layer
  (``fc2``), so every residual is 0 and a fresh layer is exactly
  ``max_k(alpha_k x + beta_k)`` = ReLU; the coefficients then grow from the
  data (mmdetection's DyReLU starts near there, from N(0, 0.01)).
  ``'random'`` leaves the coefficient layers as paddle builds them
  (Xavier-uniform weights, zero biases), as the seed's code did: a fresh
  layer then applies random coefficients to each image, and DyReLU-A so
  initialised learns far more slowly, in PyTorch as in paddle
  (docs/reproductions.md, "DyReLU-A's slow start").
* ``gate``: the squashing of the residuals, ``d = 2 gate(z) - 1``:
  ``'sigmoid'`` (the paper's text) or ``'hard'``, the hard sigmoid
  ``relu6(z + 3) / 6`` of the DyReLU authors' code.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels
from .conv import Conv2D

MODES = ("A", "B", "C")
INITS = ("random", "relu")
GATES = ("sigmoid", "hard")


class DyReLU(nn.Layer):
    def __init__(self, channels, mode="B", k=2, reduction=8, lambda_a=1.0, lambda_b=0.5,
                 init_a=None, init_b=None, tau=10.0, init="relu", gate="sigmoid"):
        super().__init__()
        mode = str(mode).upper()
        if mode not in MODES:
            raise ValueError("DyReLU mode must be one of %s, got %r" % (MODES, mode))
        if init not in INITS:
            raise ValueError("DyReLU init must be one of %s, got %r" % (INITS, init))
        if gate not in GATES:
            raise ValueError("DyReLU gate must be one of %s, got %r" % (GATES, gate))
        if channels // reduction < 1:
            raise ValueError("DyReLU: channels // reduction must be >= 1 (%d // %d)" % (channels, reduction))
        init_a = list(init_a) if init_a is not None else [1.0] + [0.0] * (k - 1)
        init_b = list(init_b) if init_b is not None else [0.0] * k
        if len(init_a) != k or len(init_b) != k:
            raise ValueError("DyReLU: init_a and init_b need k=%d values each" % k)
        self.mode, self.k, self.channels, self.tau = mode, k, channels, float(tau)
        self.init, self.gate = init, gate
        hidden = channels // reduction
        per = 1 if mode == "A" else channels
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, 2 * k * per)
        if init == "relu":
            zeros = nn.initializer.Constant(0.0)
            zeros(self.fc2.weight)
            zeros(self.fc2.bias)
        self.spatial = Conv2D(channels, 1, 1) if mode == "C" else None
        # [lambda_a]*k + [lambda_b]*k and [alpha_1..alpha_k, beta_1..beta_k]
        self.register_buffer("lambdas", paddle.to_tensor([float(lambda_a)] * k + [float(lambda_b)] * k))
        self.register_buffer("init_v", paddle.to_tensor([float(v) for v in init_a + init_b]))

    def coefficients(self, x):
        """Residual coefficients in [-1, 1]: (B, 2K) for A, (B, C, 2K) for B/C."""
        # the global average pool: a multi-threaded kernel in CPU training, else
        # a pool (paddle.mean over axes 2 and 3 has a CPU backward 15-40x slower,
        # docs/cpu_kernels.md)
        theta = kernels.channel_mean(x)
        if theta is None:
            layout = "NHWC" if kernels.nhwc() else "NCHW"
            theta = paddle.flatten(F.adaptive_avg_pool2d(x, 1, data_format=layout), 1)
        theta = self.fc2(F.relu(self.fc1(theta)))
        if self.gate == "hard":
            theta = F.relu6(theta + 3.0) / 3.0 - 1.0    # 2 * relu6(z + 3) / 6 - 1
        else:
            theta = 2.0 * F.sigmoid(theta) - 1.0
        if self.mode == "A":
            return theta
        return paddle.reshape(theta, [-1, self.channels, 2 * self.k])

    def spatial_attention(self, x):
        """pi (B, 1, H, W) = min(H*W/3 * softmax over all H*W of conv(x)/tau, 1);
        (B, H, W, 1) in a channels-last region."""
        s = self.spatial(x)
        hw = x.shape[1] * x.shape[2] if kernels.nhwc() else x.shape[2] * x.shape[3]
        p = F.softmax(paddle.reshape(s, [-1, hw]) / self.tau, axis=-1)
        p = paddle.reshape(p, paddle.shape(s))
        return paddle.minimum(p * (hw / 3.0), paddle.ones_like(p))

    def forward(self, x):
        """``y = max_k y_k`` with, per line k (``u = lambda_a da_k``,
        ``v = lambda_b db_k``, (B, C|1, 1, 1)):
        A/B: ``y_k = (alpha_k + u) x + (beta_k + v)``;
        C:   ``y_k = alpha_k x + beta_k + pi (u x + v)``, the same as
        ``(alpha_k + u pi) x + (beta_k + v pi)`` without forming the
        (B, C, 2K, H, W) coefficients."""
        k = self.k
        r = self.coefficients(x) * self.lambdas              # (B, 2K) or (B, C, 2K)
        if self.mode == "A":
            r = r.unsqueeze(1)                                # (B, 1, 2K)
        pi = self.spatial_attention(x) if self.mode == "C" else None   # (B, 1, H, W)
        fused = kernels.dyrelu(x, r, self.init_v, pi)        # CPU training: one kernel each way
        if fused is not None:
            return fused
        y = None
        for i in range(k):
            u, v = kernels.per_channel(r[:, :, i]), kernels.per_channel(r[:, :, k + i])  # (B, C|1, 1, 1)
            alpha, beta = self.init_v[i], self.init_v[k + i]
            if pi is None:
                z = (alpha + u) * x + (beta + v)
            else:
                z = alpha * x + beta + pi * (u * x + v)
            y = z if y is None else paddle.maximum(y, z)
        return y

    def channels_last_ready(self):
        """Runs on NHWC activations too (ResNet.channels_last_ready)."""
        return True

    def extra_repr(self):
        return "channels=%d, mode=%s, k=%d, init=%s, gate=%s" % (self.channels, self.mode, self.k, self.init,
                                                                  self.gate)
