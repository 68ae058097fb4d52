"""The optional packages of export and serving: paddle2onnx and onnxruntime
(``pip install ppresvar[onnx]``), and TensorRT in a paddle built with it.
A missing one is a :class:`MissingDependencyError` naming the install."""
from ..errors import UserError

__all__ = ["MissingDependencyError", "ONNX_INSTALL", "import_paddle2onnx", "import_onnxruntime", "onnx_available",
           "tensorrt_available"]

ONNX_INSTALL = ("pip install paddle2onnx onnxruntime (or pip install ppresvar[onnx]); "
                "paddle2onnx 2.x needs paddlepaddle >= 3.0")


class MissingDependencyError(UserError):
    """An optional package this feature needs is not installed."""


def import_paddle2onnx():
    try:
        import paddle2onnx
    except Exception as e:  # ImportError, or paddle2onnx 2.x refusing paddle 2.x
        raise MissingDependencyError("ONNX export needs paddle2onnx (%s: %s): %s"
                                     % (type(e).__name__, str(e).splitlines()[0][:120] if str(e) else "", ONNX_INSTALL))
    return paddle2onnx


def import_onnxruntime():
    try:
        import onnxruntime
    except Exception as e:
        raise MissingDependencyError("the onnx backend needs onnxruntime (%s): %s" % (type(e).__name__, ONNX_INSTALL))
    return onnxruntime


def onnx_available():
    """Whether paddle2onnx and onnxruntime import here."""
    try:
        import_paddle2onnx()
        import_onnxruntime()
    except MissingDependencyError:
        return False
    return True


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
