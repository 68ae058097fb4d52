"""FLOPs and parameter counts by the rules of ``paddle.flops``.

``paddle.flops`` crashed with numpy 2.4 in a check here, so this counts
the same way with forward hooks on the leaf layers, each call of a layer
counted (a layer run twice counts twice):

* convolution: ``out.numel * (cin / groups * kh * kw + has_bias)``
* BatchNorm: ``2 * in.numel`` (the model runs in eval mode)
* Linear: ``in_features * out.numel``
* AvgPool: ``out.numel``; AdaptiveAvgPool: ``(kernel + 1) * out.numel``
  with ``kernel`` the product of ``in_size // out_size`` over the pooled axes
* ReLU, Dropout and every other layer: 0 (paddle.flops counts LeakyReLU as
  ``in.numel``; so does this).

A layer that defines ``flops(self, inputs, output) -> int`` counts itself and
its sublayers are not counted: ``ppresvar.models.rir.CrossConv`` uses it to
count as the four convolutions it computes in one.

Batch norm of any dimension is counted (``paddle.flops`` matches only
``BatchNorm2D`` and ``BatchNorm`` by exact type); otherwise the figures are
``paddle.flops``'.
"""
import paddle
import paddle.nn as nn

__all__ = ["count_flops", "count_params", "conv_flops", "numel"]


def numel(x):
    n = 1
    for d in x.shape:
        n *= int(d)
    return n


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def conv_flops(conv, cin, out_numel):
    """paddle.flops' rule for one convolution with ``cin`` input channels:
    ``out.numel * (cin / groups * kernel area + has_bias)``."""
    k = 1
    for d in conv.weight.shape[2:]:  # conv: [out, in/groups, k...]; transpose: [in, out/groups, k...]
        k *= int(d)
    return out_numel * (cin // conv._groups * k + (1 if conv.bias is not None else 0))


def _conv(m, inputs, out):
    return conv_flops(m, int(_first(inputs).shape[1]), numel(out))


def _bn(m, inputs, out):
    return 2 * numel(_first(inputs))


def _linear(m, inputs, out):
    return int(m.weight.shape[0]) * numel(out)


def _avgpool(m, inputs, out):
    return numel(out)


def _adaptive_avgpool(m, inputs, out):
    x = _first(inputs)
    k = 1
    for i, o in zip(x.shape[2:], out.shape[2:]):
        k *= int(i) // int(o)
    return (k + 1) * numel(out)


def _leaky_relu(m, inputs, out):
    return numel(_first(inputs))


_RULES = (
    ((nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose,
      nn.Conv3DTranspose), _conv),
    ((nn.layer.norm._BatchNormBase, nn.BatchNorm), _bn),
    ((nn.Linear,), _linear),
    ((nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D), _avgpool),
    ((nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D), _adaptive_avgpool),
    ((nn.LeakyReLU,), _leaky_relu),
)


def _rule(layer):
    for types, fn in _RULES:
        if isinstance(layer, types):
            return fn
    return None


def _counted_layers(layer):
    """``(layer, fn)`` for the layers whose calls are counted: a layer with
    its own ``flops`` method, else a leaf with a rule; nothing below the
    first."""
    own = getattr(layer, "flops", None)
    if callable(own):
        return [(layer, lambda m, inputs, out: m.flops(inputs, out))]
    children = list(layer.children())
    if not children:
        fn = _rule(layer)
        return [(layer, fn)] if fn is not None else []
    found = []
    for child in children:
        found.extend(_counted_layers(child))
    return found


def count_flops(model, input_shape=(1, 3, 32, 32)):
    """FLOPs of one forward pass of ``model`` in eval mode on a random input
    of ``input_shape`` (``paddle.flops``' rules; see the module docstring).

    The train/eval mode of every layer is restored and the hooks removed
    afterwards.
    """
    total = [0]
    handles = []
    modes = [(m, m.training) for m in [model] + list(model.sublayers())]

    def hook(fn):
        def count(m, inputs, out):
            total[0] += int(fn(m, inputs, out))
        return count

    try:
        for layer, fn in _counted_layers(model):
            handles.append(layer.register_forward_post_hook(hook(fn)))
        model.eval()
        with paddle.no_grad():
            model(paddle.randn(list(input_shape)))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return total[0]


def count_params(model):
    """``(total, trainable)`` parameter counts. ``total`` includes the BN
    running mean and variance (Paddle keeps them as non-trainable parameters
    and ``paddle.summary`` counts them), as the seeds' figures do."""
    total = trainable = 0
    for p in model.parameters():
        n = numel(p)
        total += n
        if not p.stop_gradient:
            trainable += n
    return total, trainable
