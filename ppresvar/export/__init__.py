"""Export to a Paddle inference model, serve it, and check that every
runtime computes the same function.

* :mod:`~ppresvar.export.layout`: what an export folder holds;
* :mod:`~ppresvar.export.writer`: writing one (``tools/export.py``);
* :mod:`~ppresvar.export.preprocess`: the eval preprocessing it carries;
* :mod:`~ppresvar.export.predictors`: serving it (Paddle Inference, onnxruntime, eager);
* :mod:`~ppresvar.export.images`: predicting image files (``tools/infer.py``);
* :mod:`~ppresvar.export.parity`: runtimes against the eager model;
* :mod:`~ppresvar.export.optional`: paddle2onnx, onnxruntime, TensorRT.

The names below are the package's API (``from ppresvar import export``).
"""
from .images import list_images, load_image, predict_files, softmax, topk
from .layout import INPUT_NAME, META_FILE, ONNX_FILE, PREFIX, SAFETENSORS_FILE, ExportError, load_meta, model_files
from .optional import ONNX_INSTALL, MissingDependencyError, onnx_available, tensorrt_available
from .parity import jit_logits, parity_report, runtime_logits
from .predictors import (BACKENDS, EagerPredictor, OnnxPredictor, PaddlePredictor, create_predictor, eager_logits,
                         resolve_backend)
from .preprocess import config_preprocess, default_eval_ops, eval_transform
from .writer import (export_from_config, export_model, export_onnx, load_safetensors, save_inference_model,
                     save_safetensors, to_static)

__all__ = ["list_images", "load_image", "predict_files", "softmax", "topk", "INPUT_NAME", "META_FILE", "ONNX_FILE",
           "PREFIX", "SAFETENSORS_FILE", "ExportError", "load_meta", "model_files", "MissingDependencyError",
           "ONNX_INSTALL", "onnx_available", "tensorrt_available", "jit_logits", "parity_report", "runtime_logits",
           "BACKENDS", "EagerPredictor", "OnnxPredictor", "PaddlePredictor", "create_predictor", "eager_logits",
           "resolve_backend", "config_preprocess", "default_eval_ops", "eval_transform", "export_from_config",
           "export_model", "export_onnx", "load_safetensors", "save_inference_model", "save_safetensors", "to_static"]
