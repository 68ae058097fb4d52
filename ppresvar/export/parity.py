"""Check that every runtime of an export computes the model's function:
logits of one batch from paddle.jit, Paddle Inference with and without
oneDNN and onnxruntime, against the eager model."""
import os

import numpy as np

from ..errors import ConfigError
from .layout import model_files
from .predictors import OnnxPredictor, PaddlePredictor

__all__ = ["jit_logits", "runtime_logits", "parity_report"]


def jit_logits(model_dir, x):
    import paddle

    program, _ = model_files(model_dir)
    layer = paddle.jit.load(os.path.splitext(program)[0])
    layer.eval()
    with paddle.no_grad():
        out = layer(paddle.to_tensor(np.asarray(x, dtype="float32")))
    return (out[0] if isinstance(out, (list, tuple)) else out).numpy()


def runtime_logits(model_dir, x, runtimes=("jit", "onednn", "no_onednn", "onnx"), threads=None):
    """Logits of batch ``x`` from each runtime of an export:
    ``jit`` (paddle.jit.load), ``onednn`` / ``no_onednn`` (Paddle Inference
    on CPU), ``onnx`` (onnxruntime)."""
    out = {}
    for r in runtimes:
        if r == "jit":
            out[r] = jit_logits(model_dir, x)
        elif r in ("onednn", "no_onednn"):
            out[r] = PaddlePredictor(model_dir, onednn=(r == "onednn"), threads=threads)(x)
        elif r == "onnx":
            out[r] = OnnxPredictor(model_dir, threads=threads)(x)
        else:
            raise ConfigError("unknown runtime %r" % (r,))
    return out


def parity_report(reference, others, atol=1e-4):
    """Compare each runtime's logits with ``reference``: a dict runtime ->
    ``(max_abs_diff, same_top1, ok)``."""
    ref_top = reference.argmax(-1)
    rep = {}
    for name, logits in others.items():
        diff = float(np.abs(logits - reference).max()) if logits.shape == reference.shape else float("inf")
        same = logits.shape == reference.shape and bool((logits.argmax(-1) == ref_top).all())
        rep[name] = (diff, same, diff <= atol and same)
    return rep
