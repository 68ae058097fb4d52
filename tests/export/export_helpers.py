"""Helpers of the export tests (imported by name: pytest puts this folder on sys.path)."""
import numpy as np
import paddle

import ppresvar
from ppresvar import export as E

# ResNet-RS takes 224x224 by default; its CIFAR stem is tested on the
# smallest one only (the deep ones take minutes to export on a CPU).
RS_32 = {"resnetrs50": {"stem": "cifar"}}
# Options whose export differs in its program: RiR-18's four-convolution form.
EXTRA = [("rir18", {"fused": False})]


def models_32():
    """``(name, options)`` for every registered model whose natural input is 32x32."""
    out = []
    for name in ppresvar.list_models():
        if name.startswith("resnetrs"):
            if name in RS_32:
                out.append((name, RS_32[name]))
        else:
            out.append((name, {}))
    return out + [e for e in EXTRA if e[0] in ppresvar.list_models()]


def model_id(name, options):
    return name + "".join("-%s=%s" % kv for kv in sorted(options.items()))


def calibrate_bn(model, x, shrink=0.5):
    """Make a fresh model look trained: every BN's running statistics set to
    those of batch ``x`` (one training-mode pass with momentum 0), then every
    BN's scale and shift multiplied by ``shrink``.

    Why: at its initialisation (BN mean 0, var 1, gamma 1) a deep net's
    activations grow with depth, and with the statistics alone ResNet-152
    still amplifies rounding so much that eager float32 is 1.2e-3 from
    float64 (a 1e-6 input change moves its logits by 4e-3): an absolute
    1e-4 between runtimes would test float32, not the export. Halving the BN
    scales damps each residual branch as training does, and every op still
    runs."""
    bns = [m for m in model.sublayers() if isinstance(m, paddle.nn.layer.norm._BatchNormBase)]
    saved = [m._momentum for m in bns]
    for m in bns:
        m._momentum = 0.0
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(x))
        for m, mom in zip(bns, saved):
            m._momentum = mom
            if shrink != 1:
                for p in (m.weight, m.bias):
                    if p is not None:
                        p.set_value(p.numpy() * shrink)
    model.eval()
    return model


def image_batch(n, seed=0, size=32):
    """A normalised-looking NCHW float32 batch."""
    return np.random.RandomState(seed).randn(n, 3, size, size).astype("float32")


class Exported:
    def __init__(self, name, options, tmp_path_factory, onnx=None):
        paddle.seed(0)
        self.name = name
        self.model = ppresvar.create_model(name, num_classes=10, **options)
        calibrate_bn(self.model, image_batch(8, seed=1))
        self.x = image_batch(3, seed=2)
        self.ref = E.eager_logits(self.model, self.x)
        self.dir = str(tmp_path_factory.mktemp(model_id(name, options)))
        self.onnx = E.onnx_available() if onnx is None else onnx
        self.paths = E.export_model(self.model, self.dir, onnx=self.onnx,
                                    info={"name": name, "options": options})
