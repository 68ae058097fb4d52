"""Device, threads, kernels and seeds of a run, for the trainer and the
evaluator: on a CPU, ppresvar's CPU settings (:mod:`ppresvar.runtime`) and
every core this process is given."""
import random
import warnings

import numpy as np
import paddle

from .. import kernels, runtime
from ..errors import ConfigError
from . import distributed

__all__ = ["seed_everything", "cpu_threads", "device_of", "setup_device", "setup_kernels"]


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def cpu_threads(cfg):
    """Intra-op threads on CPU: ``Global.cpu_threads``, else every core
    divided among the data-parallel processes."""
    return cfg["Global"]["cpu_threads"] or max(1, runtime.available_cores() // distributed.world_size())


def device_of(cfg):
    """``"gpu"`` or ``"cpu"``: what ``Global.device`` means on this machine."""
    want = cfg["Global"]["device"]
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if want == "gpu" and not has_gpu:
        raise ConfigError("Global.device is gpu but paddle sees no GPU: use -o Global.device=cpu "
                          "or install paddlepaddle-gpu")
    return "gpu" if (want == "gpu" or (want == "auto" and has_gpu)) else "cpu"


def setup_device(cfg):
    """Select the device (on a CPU: ppresvar's CPU settings and threads);
    returns ``(device, amp_enabled)``.
    AMP is a GPU feature: asked for on CPU it warns and trains in float32."""
    device = device_of(cfg)
    paddle.set_device(device)
    amp = cfg["AMP"]["enable"]
    if amp and device == "cpu":
        warnings.warn("AMP needs a GPU: training in float32 on the CPU")
        amp = False
    if device == "cpu":
        runtime.apply_cpu_settings()
        runtime.set_cpu_threads(cpu_threads(cfg))
    return device, amp


def setup_kernels(cfg, device):
    """``Global.cpu_kernels`` -> ``("onednn" | "paddle", note or None)``.
    ``auto`` falls back to paddle's kernels with a note saying why;
    ``onednn`` where they cannot be built is a ConfigError."""
    mode = cfg["Global"]["cpu_kernels"]
    notes = []
    try:
        chosen = kernels.resolve(mode, device, say=print, warn=notes.append)
    except kernels.KernelsUnavailable as e:
        raise ConfigError("Global.cpu_kernels is onednn but the oneDNN kernels are unavailable here: %s. "
                          "Use -o Global.cpu_kernels=auto (falls back to paddle's kernels) or =paddle" % e)
    return chosen, (notes[0] if notes else None)
