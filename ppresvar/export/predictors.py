"""Serve an export: Paddle Inference (CPU with oneDNN on or off, GPU,
TensorRT where paddle was built with it), onnxruntime on the paddle2onnx
export, or the model rebuilt eagerly from its safetensors."""
import os

import numpy as np

from ..errors import CheckpointError, ConfigError
from .layout import INPUT_NAME, META_FILE, ONNX_FILE, PREFIX, SAFETENSORS_FILE, load_meta, model_files
from .optional import MissingDependencyError, import_onnxruntime, tensorrt_available

__all__ = ["BACKENDS", "PaddlePredictor", "EagerPredictor", "OnnxPredictor", "resolve_backend", "create_predictor",
           "eager_logits"]

BACKENDS = ("auto", "paddle", "onnx", "eager")


def _cpu_threads(threads):
    from ..runtime import available_cores

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

        from ..models import create_model
        from ..runtime import set_cpu_threads

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
        from ..engine.checkpoint import load_weights

        load_weights(self.model, weights)
        self.model.eval()

    def __call__(self, x):
        return eager_logits(self.model, x)

    def describe(self):
        threads = ", %d threads" % self.threads if self.threads else ""
        return "eager paddle %s%s, weights from %s" % (self.device, threads, SAFETENSORS_FILE)


class OnnxPredictor:
    """onnxruntime on ``inference.onnx`` of an export directory (or an .onnx
    path): every graph optimisation, ``threads`` intra-op threads (default:
    every core), one inter-op thread, sequential execution."""

    backend = "onnx"

    def __init__(self, model_dir, device="cpu", threads=None, **_ignored):
        ort = import_onnxruntime()
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
            import_onnxruntime()
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


def eager_logits(model, x):
    import paddle

    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(np.asarray(x, dtype="float32"))).numpy()
