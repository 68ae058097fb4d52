"""Export to a Paddle inference model, serve it, and check that every
runtime computes the same function.

An export directory holds::

    inference.json | inference.pdmodel   the program (Paddle 3.x PIR | Paddle 2.x)
    inference.pdiparams                  the weights, for the program
    model.safetensors                    the weights as a state dict, for sharing
    inference.onnx                       optional, through paddle2onnx
    preprocess.json                      size, mean, std, class names, eval transforms

Which program format is there is found by looking at the files, never by
reading a version string. Backends: ``paddle`` (Paddle Inference on CPU with
oneDNN on or off, GPU, TensorRT where paddle was built with it) and ``onnx``
(onnxruntime on the paddle2onnx export, an optional dependency).
"""
import inspect
import json
import os

import numpy as np

from .errors import CheckpointError, ConfigError, UserError

PREFIX = "inference"
META_FILE = "preprocess.json"
SAFETENSORS_FILE = "model.safetensors"
ONNX_FILE = PREFIX + ".onnx"
INPUT_NAME = "x"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
BACKENDS = ("auto", "paddle", "onnx", "eager")
ONNX_INSTALL = "pip install paddle2onnx onnxruntime (or pip install ppresvar[onnx]); paddle2onnx 2.x needs paddlepaddle >= 3.0"


class MissingDependencyError(UserError):
    """An optional package this feature needs is not installed."""


class ExportError(UserError):
    pass


# ------------------------------------------------------------------- export

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


def model_files(path):
    """``(program_file, params_file)`` of an export directory (or a
    ``dir/prefix`` path): ``prefix.json`` (Paddle 3.x, PIR) or
    ``prefix.pdmodel`` (Paddle 2.x), whichever is there."""
    if os.path.isdir(path):
        prefix = os.path.join(path, PREFIX)
    else:
        prefix = path
        for ext in (".json", ".pdmodel", ".pdiparams"):
            if prefix.endswith(ext):
                prefix = prefix[: -len(ext)]
    params = prefix + ".pdiparams"
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(prefix + ext):
            if not os.path.isfile(params):
                raise CheckpointError("%s has no weights file %s" % (prefix + ext, params))
            return prefix + ext, params
    raise CheckpointError("no exported model at %s: expected %s.json (Paddle 3.x) or %s.pdmodel "
                          "(Paddle 2.x) with .pdiparams; run tools/export.py first" % (path, prefix, prefix))


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
    from . import safetensors

    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    return safetensors.save(tensors, path, metadata={"format": "paddle-state-dict"})


def load_safetensors(model, path):
    """Load a :func:`save_safetensors` file into ``model`` (the checks of
    :func:`ppresvar.load_weights`)."""
    from .engine.checkpoint import load_weights

    load_weights(model, path)
    return model


def _import_paddle2onnx():
    try:
        import paddle2onnx
    except Exception as e:  # ImportError, or paddle2onnx 2.x refusing paddle 2.x
        raise MissingDependencyError("ONNX export needs paddle2onnx (%s: %s): %s"
                                     % (type(e).__name__, str(e).splitlines()[0][:120] if str(e) else "", ONNX_INSTALL))
    return paddle2onnx


def export_onnx(program_file, params_file, save_file, opset=13):
    """Convert an exported Paddle model to ONNX with paddle2onnx, offline
    (``optimize_tool='None'``: its default tries to pip-install helpers)."""
    p2o = _import_paddle2onnx()
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


def load_meta(model_dir):
    """The ``preprocess.json`` saved beside an export ({} when absent)."""
    path = os.path.join(model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir), META_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError("%s is not readable JSON (%s): the export is damaged; export it again with "
                              "tools/export.py" % (path, e))
    if not isinstance(meta, dict):
        raise CheckpointError("%s does not hold a JSON object: the export is damaged; export it again with "
                              "tools/export.py" % path)
    return meta


# --------------------------------------------------------------- predictors

def _cpu_threads(threads):
    from .runtime import available_cores

    return int(threads or available_cores())


def _call(obj, *names, args=()):
    """Call the first method of ``obj`` among ``names`` that exists (Paddle
    renamed mkldnn to onednn); False when none does."""
    for n in names:
        fn = getattr(obj, n, None)
        if fn is not None:
            fn(*args)
            return True
    return False


def tensorrt_available():
    """Whether this paddle was built with TensorRT and can load it."""
    try:
        from paddle import inference
    except ImportError:
        return False
    for fn_name in ("get_trt_compile_version", "get_trt_runtime_version"):
        fn = getattr(inference, fn_name, None)
        try:
            if fn is None or not any(fn()):
                return False
        except Exception:
            return False
    return True


def _concats_parameters(program_file):
    """Whether an old-IR ``.pdmodel`` program concatenates persistable
    variables (parameters). False when the proto module is not found."""
    import importlib

    for mod in ("paddle.base.proto.framework_pb2", "paddle.fluid.proto.framework_pb2"):
        try:
            pb = importlib.import_module(mod)
            break
        except ImportError:
            continue
    else:
        return False
    with open(program_file, "rb") as f:
        blob = f.read()
    try:
        desc = pb.ProgramDesc.FromString(blob)
    except Exception as e:  # protobuf's DecodeError, by version
        raise CheckpointError("cannot load the exported model %s (%s): the file is damaged; export it again "
                              "with tools/export.py" % (program_file, type(e).__name__))
    for block in desc.blocks:
        persistable = {v.name for v in block.vars if v.persistable}
        for op in block.ops:
            if op.type == "concat" and any(a in persistable for i in op.inputs for a in i.arguments):
                return True
    return False


def _input_chw(model_dir):
    shape = load_meta(model_dir).get("input_shape") or [None, 3, 32, 32]
    return [int(d) for d in shape[1:]]


def _pir_tensorrt(program, model_dir, precision, max_batch):
    """Paddle 3.x (PIR programs): convert with ``paddle.tensorrt.convert``
    once per precision and batch range, into ``<export>/tensorrt_<prec>_b<N>/``.
    Returns the converted ``(program, params)``. (No GPU was at hand to run
    this path when it was written: it follows Paddle's PIR-TRT API.)"""
    try:
        from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert
    except ImportError:
        raise ConfigError("this paddle has no paddle.tensorrt: drop --tensorrt, or install a paddle built "
                          "with TensorRT")
    prefix = os.path.join(model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir),
                          "tensorrt_%s_b%d" % (precision, int(max_batch)), PREFIX)
    if not os.path.isfile(prefix + ".json"):
        chw = _input_chw(model_dir)
        opt = max(1, int(max_batch) // 2)
        spec = Input(min_input_shape=[1] + chw, optim_input_shape=[opt] + chw,
                     max_input_shape=[int(max_batch)] + chw, name=INPUT_NAME)
        cfg = TensorRTConfig(inputs=[spec])
        cfg.precision_mode = {"fp32": PrecisionMode.FP32, "fp16": PrecisionMode.FP16}[precision]
        cfg.save_model_dir = prefix
        convert(os.path.splitext(program)[0], cfg)
    return prefix + ".json", prefix + ".pdiparams"


def _old_ir_tensorrt(config, inference, precision, max_batch, model_dir):
    """Paddle 2.x (old IR programs): TensorRT subgraphs with a dynamic batch."""
    if not tensorrt_available():
        raise ConfigError("this paddle has no TensorRT: drop --tensorrt, or install a paddle built with it")
    prec = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half}[precision]
    config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=int(max_batch), min_subgraph_size=3,
                                  precision_mode=prec, use_static=False, use_calib_mode=False)
    chw = _input_chw(model_dir)
    config.set_trt_dynamic_shape_info({INPUT_NAME: [1] + chw}, {INPUT_NAME: [int(max_batch)] + chw},
                                      {INPUT_NAME: [max(1, int(max_batch) // 2)] + chw})


class PaddlePredictor:
    """Paddle Inference on an export directory.

    ``device``: ``cpu`` or ``gpu``. On CPU ``onednn`` switches the oneDNN
    kernels and fusions (explicitly, both ways: the default differs between
    paddle lines) and ``threads`` is the math library's thread count (default:
    every core). ``tensorrt`` (GPU) uses TensorRT subgraphs where this paddle
    has them and raises a :class:`UserError` where it has not.
    ``__call__(x)`` takes an NCHW float32 batch of any size, returns logits.
    """

    backend = "paddle"

    def __init__(self, model_dir, device="cpu", onednn=True, threads=None, tensorrt=False,
                 precision="fp32", gpu_id=0, gpu_mem_mb=256, max_batch=64, glog=False):
        from paddle import inference

        program, params = model_files(model_dir)
        self.device, self.onednn, self.threads = device, bool(onednn) and device == "cpu", None
        if device not in ("cpu", "gpu"):
            raise ConfigError("unknown device %r: choose cpu or gpu" % (device,))
        if tensorrt and device != "gpu":
            raise ConfigError("TensorRT runs on GPU: add --device gpu")
        trt_pir = False
        if device == "gpu":
            import paddle

            if not paddle.is_compiled_with_cuda():
                raise ConfigError("this paddle has no CUDA: use --device cpu, or install paddlepaddle-gpu")
            if tensorrt and program.endswith(".json"):
                program, params = _pir_tensorrt(program, model_dir, precision, max_batch)
                trt_pir = True
        config = inference.Config(program, params)
        if device == "gpu":
            config.enable_use_gpu(int(gpu_mem_mb), int(gpu_id))
            if tensorrt and not trt_pir:
                _old_ir_tensorrt(config, inference, precision, max_batch, model_dir)
        else:
            config.disable_gpu()
            self.threads = _cpu_threads(threads)
            config.set_cpu_math_library_num_threads(self.threads)
            if self.onednn:
                _call(config, "enable_onednn", "enable_mkldnn")
            else:
                _call(config, "disable_onednn", "disable_mkldnn")
        # Paddle 2.x (old IR programs): its seqpool_cvm_concat_fuse_pass
        # segfaults on a concat of parameters (RiR's fused convolution builds
        # its kernel so), and delete_pass does not keep it from running; such
        # a program runs unoptimised there. Paddle 3.x (PIR) optimises it.
        self.ir_optim = not (program.endswith(".pdmodel") and _concats_parameters(program))
        config.switch_ir_optim(self.ir_optim)
        # enable_memory_optim() breaks PIR predictors of paddle 3.3 ("Not find
        # predictor_id and pass_name memory_optimize_pass"); it only saves memory.
        if not glog and hasattr(config, "disable_glog_info"):
            config.disable_glog_info()
        self.config = config
        try:
            self.predictor = inference.create_predictor(config)
        except (RuntimeError, ValueError, OSError, MemoryError) as e:  # paddle's C++ errors surface so
            first = next((l.strip() for l in str(e).splitlines() if l.strip()), type(e).__name__)
            raise CheckpointError("cannot load the exported model %s with %s (%s): the files are damaged or "
                                  "incomplete; export it again with tools/export.py" % (program, params, first[:200]))
        self.input_name = self.predictor.get_input_names()[0]
        self.output_name = self.predictor.get_output_names()[0]

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype="float32")
        h = self.predictor.get_input_handle(self.input_name)
        h.reshape(list(x.shape))
        h.copy_from_cpu(x)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()

    def describe(self):
        if self.device == "cpu":
            return "Paddle Inference cpu, oneDNN %s, %d threads" % ("on" if self.onednn else "off", self.threads)
        return "Paddle Inference gpu"


class EagerPredictor:
    """The model rebuilt from an export's ``preprocess.json`` (its name and
    options) with the weights of its ``model.safetensors``, run eagerly: what
    needs no program file and no pickle, for weights shared as safetensors."""

    backend = "eager"

    def __init__(self, model_dir, device="cpu", threads=None, **_):
        import paddle

        from .models import create_model
        from .runtime import set_cpu_threads

        meta = load_meta(model_dir)
        info = meta.get("model") or {}
        folder = model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir)
        weights = os.path.join(folder, SAFETENSORS_FILE)
        if not info.get("name") or not os.path.isfile(weights):
            raise CheckpointError("%s has no %s and model name in %s: the eager backend needs an export of "
                                  "tools/export.py" % (folder, SAFETENSORS_FILE, META_FILE))
        num_classes = info.get("num_classes") or len(meta.get("class_names") or []) or None
        paddle.set_device(device)
        self.device, self.threads = device, None
        if device == "cpu":
            self.threads = _cpu_threads(threads)
            set_cpu_threads(self.threads)
        self.model = create_model(info["name"], num_classes=num_classes, **(info.get("options") or {}))
        from .engine.checkpoint import load_weights

        load_weights(self.model, weights)
        self.model.eval()

    def __call__(self, x):
        return eager_logits(self.model, x)

    def describe(self):
        threads = ", %d threads" % self.threads if self.threads else ""
        return "eager paddle %s%s, weights from %s" % (self.device, threads, SAFETENSORS_FILE)


def _import_onnxruntime():
    try:
        import onnxruntime
    except Exception as e:
        raise MissingDependencyError("the onnx backend needs onnxruntime (%s): %s" % (type(e).__name__, ONNX_INSTALL))
    return onnxruntime


class OnnxPredictor:
    """onnxruntime on ``inference.onnx`` of an export directory (or an .onnx
    path): every graph optimisation, ``threads`` intra-op threads (default:
    every core), one inter-op thread, sequential execution."""

    backend = "onnx"

    def __init__(self, model_dir, device="cpu", threads=None, **_ignored):
        ort = _import_onnxruntime()
        path = model_dir if str(model_dir).endswith(".onnx") else os.path.join(model_dir, ONNX_FILE)
        if not os.path.isfile(path):
            raise CheckpointError("no ONNX model at %s: export with tools/export.py --onnx" % path)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.threads = _cpu_threads(threads)
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device == "gpu":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("this onnxruntime has no CUDA provider: pip install onnxruntime-gpu, or use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.device = device
        self.session = ort.InferenceSession(path, sess_options=so, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype="float32")
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def describe(self):
        return "onnxruntime %s threads=%d" % (self.device, self.threads)


def resolve_backend(model_dir, backend="auto", device="cpu", tensorrt=False):
    """``auto``: onnxruntime where the export has ``inference.onnx`` and
    onnxruntime is installed (on CPU, without TensorRT), else Paddle
    Inference. onnxruntime served ResNet-20 at 4,200-4,700 images/s on this
    2-core machine against 2,400-2,800 for Paddle Inference with oneDNN
    (docs/benchmarks.md has the figures per model)."""
    if backend != "auto":
        return backend
    onnx_file = os.path.join(model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir), ONNX_FILE)
    if device == "cpu" and not tensorrt and os.path.isfile(onnx_file):
        try:
            _import_onnxruntime()
            return "onnx"
        except MissingDependencyError:
            pass
    return "paddle"


def create_predictor(model_dir, backend="paddle", **kw):
    """A callable ``x (N,C,H,W float32) -> logits``: ``backend='paddle'``
    (:class:`PaddlePredictor`), ``'onnx'`` (:class:`OnnxPredictor`) or
    ``'auto'`` (:func:`resolve_backend`)."""
    backend = resolve_backend(model_dir, backend, kw.get("device", "cpu"), kw.get("tensorrt", False))
    if backend == "paddle":
        return PaddlePredictor(model_dir, **kw)
    if backend == "onnx":
        return OnnxPredictor(model_dir, **kw)
    if backend == "eager":
        return EagerPredictor(model_dir, **kw)
    raise ConfigError("unknown backend %r: choose one of %s" % (backend, ", ".join(BACKENDS)))


def onnx_available():
    """Whether paddle2onnx and onnxruntime import here."""
    try:
        _import_paddle2onnx()
        _import_onnxruntime()
    except MissingDependencyError:
        return False
    return True


# ------------------------------------------------------------ preprocessing

def eval_transform(meta):
    """The evaluation transform of an export: ``build_transforms`` of the
    eval pipeline saved from the config, the very code path that
    ``ppresvar.data.eval_transform(cfg)`` (``tools/eval.py``) runs. An export
    made without a config (``export_model`` on a bare model) gets a
    ``NormalizeImage`` of its ``mean``/``std``, after a ``Resize`` to ``size``.
    Maps a PIL image to a float32 CHW array."""
    from .data.transforms import build_transforms

    ops = meta.get("transforms")
    if not ops:
        ops = default_eval_ops(meta)
    return build_transforms(ops, "%s transforms" % META_FILE)


def default_eval_ops(meta):
    """Eval ops for an export with ``size``/``mean``/``std`` but no pipeline."""
    size = meta.get("size") or 32
    ops = [{"Resize": {"size": list(size) if isinstance(size, (list, tuple)) else [int(size), int(size)]}}]
    channels = int(meta.get("channels") or 3)
    mean = meta.get("mean") or [0.0] * channels
    std = meta.get("std") or [1.0] * channels
    return ops + [{"NormalizeImage": {"mean": list(mean), "std": list(std)}}]


def config_preprocess(cfg):
    """What ``preprocess.json`` holds for a config: the data package's
    ``eval_preprocess(cfg)`` (size, mean, std, class names...) plus the eval
    pipeline itself (``transforms``) for :func:`eval_transform`."""
    from .data.transforms import eval_preprocess, eval_transform as cfg_eval_transform

    pre = dict(eval_preprocess(cfg))
    pre["transforms"] = list(cfg_eval_transform(cfg).spec)
    return pre


def export_from_config(cfg, output_dir, weights=None, onnx=False, check=True, use_ema=True):
    """``tools/export.py``: build the config's model, load ``weights``
    (default ``Global.pretrained_model``), export it with its eval
    preprocessing, and (``check``) compare the runtimes with eager on a
    random batch. Returns ``(paths, parity)`` (parity is ``{}`` without check)."""
    from .engine.builder import build_model, model_options
    from .engine.checkpoint import load_weights

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


def list_images(paths):
    """Image files among ``paths`` (files, or folders searched recursively),
    sorted within each folder."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise UserError("no such file or folder: %s" % p)
    if not files:
        raise UserError("no images found in %s (extensions: %s)" % (", ".join(paths), " ".join(IMAGE_EXTENSIONS)))
    return files


def load_image(path, color="RGB"):
    """A PIL image in ``color`` mode ('RGB', or 'L' for grey models), as the
    data sets hand images to the eval transform."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert(color or "RGB")
    except OSError as e:
        raise UserError("cannot read image %s: %s" % (path, e))


def softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk(probs, k, class_names=None):
    """Per row, ``[(class_index, label, probability)]`` of the ``k`` largest."""
    k = min(int(k), probs.shape[-1])
    idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    out = []
    for row, ids in zip(probs, idx):
        out.append([(int(i), class_names[i] if class_names and i < len(class_names) else str(int(i)),
                     float(row[i])) for i in ids])
    return out


def predict_files(model_dir, paths, backend="auto", k=5, batch_size=32, predictor=None, **predictor_kw):
    """Top-``k`` predictions for image files/folders: a list of
    ``{"file", "top": [(index, label, prob), ...]}``."""
    meta = load_meta(model_dir)
    transform = eval_transform(meta)
    if predictor is None:
        predictor = create_predictor(model_dir, backend=backend, **predictor_kw)
    files = list_images(paths)
    color = meta.get("color") or ("L" if meta.get("channels") == 1 else "RGB")
    results = []
    for i in range(0, len(files), int(batch_size)):
        chunk = files[i:i + int(batch_size)]
        batch = np.stack([np.asarray(transform(load_image(f, color)), dtype="float32") for f in chunk])
        for f, top in zip(chunk, topk(softmax(predictor(batch)), k, meta.get("class_names"))):
            results.append({"file": f, "top": top})
    return results


# ------------------------------------------------------------------- parity

def eager_logits(model, x):
    import paddle

    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(np.asarray(x, dtype="float32"))).numpy()


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
