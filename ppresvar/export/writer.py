"""Write an export: ``paddle.jit`` program and weights, safetensors,
preprocessing metadata and (optionally) ONNX; from a model or from a config
with its weights (``tools/export.py``), with a parity check of the runtimes."""
import inspect
import json
import os

import numpy as np

from ..errors import ConfigError
from .layout import INPUT_NAME, META_FILE, ONNX_FILE, PREFIX, SAFETENSORS_FILE, ExportError, model_files
from .optional import import_paddle2onnx
from .parity import parity_report, runtime_logits
from .predictors import eager_logits
from .preprocess import config_preprocess

__all__ = ["to_static", "save_inference_model", "save_safetensors", "load_safetensors", "export_onnx",
           "export_model", "export_from_config"]


def _to_static_kwargs():
    """``full_graph=True`` where ``paddle.jit.to_static`` knows it: Paddle 3.x
    ignores the input_spec (so the batch is not dynamic) without it. It is a
    ``**kwargs`` key, not a named parameter, so look at the source as well."""
    import paddle

    fn = paddle.jit.to_static
    try:
        if "full_graph" in inspect.signature(fn).parameters:
            return {"full_graph": True}
    except (TypeError, ValueError):
        pass
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = fn.__doc__ or ""
    return {"full_graph": True} if "full_graph" in text else {}


def to_static(layer, input_spec):
    """``paddle.jit.to_static`` with the input spec honoured on Paddle 2.6 and 3.x."""
    import paddle

    return paddle.jit.to_static(layer, input_spec=input_spec, **_to_static_kwargs())


def _exportable(model):
    """A wrapper to convert, so that ``to_static`` (which replaces the
    converted layer's ``forward``) leaves the user's model eager."""
    import paddle.nn as nn

    class Exported(nn.Layer):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    return Exported(model)


def save_inference_model(model, output_dir, input_shape=(3, 32, 32), prefix=PREFIX):
    """``paddle.jit.to_static`` + ``paddle.jit.save`` of ``model`` in eval
    mode with a dynamic batch. Returns ``(program_file, params_file)``."""
    import paddle
    from paddle.static import InputSpec

    os.makedirs(output_dir, exist_ok=True)
    was_training = model.training
    layers = [model] + list(model.sublayers())
    own_forward = [("forward" in vars(m)) for m in layers]
    model.eval()
    try:
        spec = [InputSpec([None] + [int(d) for d in input_shape], "float32", INPUT_NAME)]
        static = paddle.jit.to_static(_exportable(model), input_spec=spec, **_to_static_kwargs())
        paddle.jit.save(static, os.path.join(output_dir, prefix))
    finally:
        # Paddle 2.x rebinds the converted sublayers' forward: give them back theirs
        for m, had in zip(layers, own_forward):
            if not had:
                vars(m).pop("forward", None)
        if was_training:
            model.train()
    return model_files(os.path.join(output_dir, prefix))


def save_safetensors(model, path):
    """The state dict (parameters and BN statistics) as safetensors
    (``ppresvar.safetensors``: no package needed). Returns ``path``."""
    from .. import safetensors

    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    return safetensors.save(tensors, path, metadata={"format": "paddle-state-dict"})


def load_safetensors(model, path):
    """Load a :func:`save_safetensors` file into ``model`` (the checks of
    :func:`ppresvar.load_weights`)."""
    from ..engine.checkpoint import load_weights

    load_weights(model, path)
    return model


def export_onnx(program_file, params_file, save_file, opset=13):
    """Convert an exported Paddle model to ONNX with paddle2onnx, offline
    (``optimize_tool='None'``: its default tries to pip-install helpers)."""
    p2o = import_paddle2onnx()
    kw = dict(opset_version=opset, enable_onnx_checker=True)
    params = inspect.signature(p2o.export).parameters
    if "optimize_tool" in params:
        kw["optimize_tool"] = "None"
    if "auto_upgrade_opset" in params:
        kw["auto_upgrade_opset"] = True
    if os.path.exists(save_file):
        os.remove(save_file)
    p2o.export(program_file, params_file, save_file=save_file, **kw)
    # paddle2onnx logs conversion errors instead of raising them
    if not os.path.isfile(save_file) or os.path.getsize(save_file) == 0:
        raise ExportError("paddle2onnx could not convert %s (see its log above)" % program_file)
    return save_file


def export_model(model, output_dir, input_shape=(3, 32, 32), preprocess=None, onnx=False,
                 safetensors=True, info=None, opset=13):
    """Write everything a deployment needs to ``output_dir`` (module docstring).

    ``preprocess``: dict with ``size``, ``mean``, ``std``, ``class_names`` and
    optionally ``transforms`` (the eval transform list of the config), saved
    as ``preprocess.json`` with ``info`` (model name, options). Returns a dict
    of the written paths (``safetensors``/``onnx`` are ``None`` when skipped).
    """
    program, params = save_inference_model(model, output_dir, input_shape)
    meta = {"program_file": os.path.basename(program), "params_file": os.path.basename(params),
            "input_name": INPUT_NAME, "input_shape": [None] + [int(d) for d in input_shape]}
    meta.update(preprocess or {})
    meta.setdefault("size", [int(input_shape[-2]), int(input_shape[-1])])
    meta.setdefault("channels", int(input_shape[0]))
    if info:
        meta["model"] = info
    meta_path = os.path.join(output_dir, META_FILE)
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    out = {"program": program, "params": params, "preprocess": meta_path, "safetensors": None, "onnx": None}
    if safetensors:
        out["safetensors"] = save_safetensors(model, os.path.join(output_dir, SAFETENSORS_FILE))
    if onnx:
        out["onnx"] = export_onnx(program, params, os.path.join(output_dir, ONNX_FILE), opset)
    return out


def export_from_config(cfg, output_dir, weights=None, onnx=False, check=True, use_ema=True):
    """``tools/export.py``: build the config's model, load ``weights``
    (default ``Global.pretrained_model``), export it with its eval
    preprocessing, and (``check``) compare the runtimes with eager on a
    random batch. Returns ``(paths, parity)`` (parity is ``{}`` without check)."""
    from ..engine.builder import build_model, model_options
    from ..engine.checkpoint import load_weights

    weights = weights or cfg["Global"].get("pretrained_model")
    if not weights:
        raise ConfigError("no weights to export: pass -o Global.pretrained_model=PATH "
                          "(e.g. output/<run>/checkpoints/best.pdckpt)")
    pre = config_preprocess(cfg)
    if not pre.get("size"):
        raise ConfigError("the eval transforms give no fixed image size (a Resize of the shorter side "
                          "without CenterCrop): add CenterCrop so that the exported model has one input shape")
    model = build_model(cfg)
    load_weights(model, weights, use_ema=use_ema)
    model.eval()
    h, w = pre["size"]
    shape = (int(pre.get("channels") or 3), int(h), int(w))
    info = {"name": cfg["Arch"]["name"], "num_classes": cfg["Arch"].get("num_classes"),
            "options": model_options(cfg), "weights": str(weights)}
    paths = export_model(model, output_dir, shape, preprocess=pre, onnx=onnx, info=info)
    parity = {}
    if check:
        x = np.random.RandomState(0).randn(2, *shape).astype("float32")
        runtimes = ("jit", "onednn", "no_onednn") + (("onnx",) if paths["onnx"] else ())
        parity = parity_report(eager_logits(model, x), runtime_logits(output_dir, x, runtimes))
    return paths, parity
