"""Weight initialisation shared by the model families."""
import paddle.nn as nn


def kaiming_init(model, fan_in_layers=()):
    """Kaiming normal in fan-out mode (He et al. 2015b, as torchvision) on
    every conv weight, zero conv biases, BN gamma 1 and beta 0. Convs in
    ``fan_in_layers`` get fan-in mode instead (RiR's 1x1-conv classifier).

    The initializers are called on the parameters: building one and dropping
    it, as the RiR seed did (``KaimingNormal(m.weight)``), initialises nothing.
    """
    zeros, ones = nn.initializer.Constant(0.0), nn.initializer.Constant(1.0)
    fan_in_ids = set(id(m) for m in fan_in_layers)
    for m in model.sublayers():
        if isinstance(m, nn.Conv2D):
            w = m.weight
            if id(m) in fan_in_ids:
                nn.initializer.KaimingNormal()(w)
            else:
                fan_out = w.shape[0] * w.shape[2] * w.shape[3] // m._groups
                nn.initializer.KaimingNormal(fan_in=fan_out)(w)
            if m.bias is not None:
                zeros(m.bias)
        elif isinstance(m, (nn.BatchNorm1D, nn.BatchNorm2D)):
            ones(m.weight)
            zeros(m.bias)
