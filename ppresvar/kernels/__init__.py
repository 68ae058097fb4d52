"""oneDNN CPU kernels for training (``Global.cpu_kernels``).

Eager paddle runs its own CPU convolutions, not oneDNN's, although the wheel
ships oneDNN's library (``paddle/libs/libdnnl.so.3``). ``onednn_conv.cc`` is
a custom operator (``PD_BUILD_OP``/``PD_BUILD_GRAD_OP``, the same API on
paddle 2.6 and 3.x) running 2-D convolution forward, backward-data and
backward-weights (+ bias) through that library, so paddle's autograd uses it;
``cpu_ops.cc`` holds the option-A shortcut (subsample + zero channels), one
loop each way instead of paddle's slow strided-slice gradient.

Build: once per machine, paddle version and source, into
``$PPRESVAR_CACHE_DIR`` (default ``~/.cache/ppresvar``): on first use, or
ahead of a run with ``python -m ppresvar.kernels`` (for a machine that will
train without a network). It needs a C++ compiler and oneDNN's headers,
which paddle does not ship: they come from ``$PPRESVAR_ONEDNN_INCLUDE``, from
an installed ``onednn-devel-cpu-iomp`` (``pip install --no-deps
onednn-devel-cpu-iomp==2023.2.0``), or are fetched once from the package
index as that wheel (188 KB, headers only), pinned by version and SHA-256
(``python -m ppresvar.kernels --headers-wheel FILE`` takes a copy of it
instead). Only C calls that paddle's library exports are used. Whatever is
missing, the kernels are reported unavailable in one line with the reason,
and training carries on with paddle's kernels.

Use: :func:`use` turns them on for a block (the trainer does, on CPU);
:class:`ppresvar.layers.Conv2D` and :func:`conv2d` then run through them in
eager mode on CPU float32 tensors and fall back to ``F.conv2d`` everywhere
else (GPU, static graphs and export, groups, asymmetric padding), so an
exported program holds plain ``conv2d`` ops and checkpoints do not change.

Channels-last: oneDNN's convolutions are fastest on NHWC activations, and a
network converted once at its entry runs no reorder between layers. Inside
``use(channels_last=True)`` (the default), a model whose every layer handles
it (``ResNet.forward_features``: plain ResNets, see its docstring) opens a
:func:`channels_last` region: its tensors are NHWC there, and the kernels
(:func:`conv2d`, :func:`batch_norm`, :func:`shortcut_a`, :func:`add_relu`)
and the layers' fallbacks read :func:`nhwc` to know it. Parameters stay as
paddle holds them (OIHW), so checkpoints and exports do not change.
"""
import contextlib
import glob
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import paddle
import paddle.nn.functional as F

__all__ = ["KernelsUnavailable", "load", "available", "use", "active", "channels_last", "nhwc", "channel_count",
           "per_channel", "conv2d", "shortcut_a", "batch_norm", "dyrelu",
           "nam_gate", "channel_mean", "add_relu", "resolve", "MODES",
           "ONEDNN_HEADERS", "ONEDNN_HEADERS_SHA256", "unpack_headers", "headers_cache"]

MODES = ("auto", "onednn", "paddle")
ONEDNN_HEADERS = "onednn-devel-cpu-iomp==2023.2.0"  # headers of oneDNN 3.2 (C API as paddle's 3.x library)
# the wheel's SHA-256, as the package index serves it (a wheel with another hash is not used)
ONEDNN_HEADERS_SHA256 = "67d879f7829b74677e52673e30b34d1a066e7c011e42d0a15515e472fa74caab"
_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCES = [os.path.join(_HERE, name) for name in ("onednn_conv.cc", "cpu_ops.cc", "cpu_norm.cc")]
# -fno-trapping-math lets GCC turn the kernels' selects (ReLU masks, DyReLU's line
# choice) into vector blends: DyReLU's NHWC backward ran 9x faster with it, with
# the same results (no reassociation: that would take -ffast-math, never used)
_CFLAGS = ["-O2", "-std=c++17", "-fopenmp", "-fno-trapping-math"]


class KernelsUnavailable(RuntimeError):
    """The oneDNN kernels cannot be built or loaded here (the message says why)."""


def cache_dir():
    root = os.environ.get("PPRESVAR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ppresvar")
    return root


def _paddle_libdnnl():
    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    found = sorted(glob.glob(os.path.join(libs, "libdnnl.so*")))
    return libs, (os.path.basename(found[0]) if found else None)


def _has_headers(include):
    return bool(include) and os.path.isfile(os.path.join(include, "oneapi", "dnnl", "dnnl.hpp"))


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpack_headers(wheel, dest):
    """Check ``wheel`` against the pinned SHA-256 and unpack its include/
    into ``dest`` (atomically); raises KernelsUnavailable on a mismatch."""
    digest = _sha256(wheel)
    if digest != ONEDNN_HEADERS_SHA256:
        raise KernelsUnavailable("%s has SHA-256 %s, not the pinned %s of %s: not used"
                                 % (os.path.basename(wheel), digest[:16] + "...", ONEDNN_HEADERS_SHA256[:16] + "...",
                                    ONEDNN_HEADERS))
    staging = dest + ".part%d" % os.getpid()
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            marker = "/data/include/"
            if marker in name and not name.endswith("/"):
                target = os.path.join(staging, name.split(marker, 1)[1])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with z.open(name) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    if not _has_headers(staging):
        shutil.rmtree(staging, ignore_errors=True)
        raise KernelsUnavailable("the %s wheel holds no oneapi/dnnl/dnnl.hpp" % ONEDNN_HEADERS)
    if os.path.isdir(dest):
        shutil.rmtree(staging)
    else:
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        os.replace(staging, dest)
    return dest


def _fetch_headers(dest):
    """Download the headers-only wheel and unpack its include/ into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               "-d", tmp, ONEDNN_HEADERS]
        try:
            subprocess.run(cmd, check=True, timeout=180, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.SubprocessError) as e:
            detail = getattr(e, "stderr", b"") or b""
            raise KernelsUnavailable("oneDNN headers not found and `pip download %s` failed (%s): install them "
                                     "with `pip install --no-deps %s` or set PPRESVAR_ONEDNN_INCLUDE"
                                     % (ONEDNN_HEADERS, detail.decode("utf-8", "replace").strip().splitlines()[-1:]
                                        or e.__class__.__name__, ONEDNN_HEADERS))
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if not wheels:
            raise KernelsUnavailable("pip download %s gave no wheel" % ONEDNN_HEADERS)
        unpack_headers(wheels[0], dest)


def headers_cache():
    return os.path.join(cache_dir(), "onednn-headers-2023.2.0")


def find_headers(fetch=True):
    """The folder holding ``oneapi/dnnl/dnnl.hpp``; raises KernelsUnavailable."""
    env = os.environ.get("PPRESVAR_ONEDNN_INCLUDE")
    if env:
        if not _has_headers(env):
            raise KernelsUnavailable("PPRESVAR_ONEDNN_INCLUDE=%s holds no oneapi/dnnl/dnnl.hpp" % env)
        return env
    for prefix in (sys.prefix, getattr(sys, "base_prefix", sys.prefix)):
        if _has_headers(os.path.join(prefix, "include")):
            return os.path.join(prefix, "include")
    cached = headers_cache()
    if not _has_headers(cached):
        if not fetch:
            raise KernelsUnavailable("oneDNN headers not found")
        os.makedirs(cache_dir(), exist_ok=True)
        _fetch_headers(cached)
    return cached


def _compiler():
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build_tag():
    """Identifies a build: paddle version, Python, and the source's hash."""
    h = hashlib.sha256(paddle.__version__.encode())
    h.update(" ".join(_CFLAGS).encode())
    for path in _SOURCES:
        with open(path, "rb") as f:
            h.update(f.read())
    digest = h.hexdigest()[:10]
    return "onednn_%s" % digest


@contextlib.contextmanager
def _quiet():
    """paddle's extension builder prints and logs on every step."""
    extension_utils = _extension_utils()
    loggers = [logging.getLogger(n) for n in ("", "paddle")]
    loggers += [v for v in vars(extension_utils).values() if isinstance(v, logging.Logger)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield buf
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _lock(path):
    import fcntl

    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _extension_utils():
    import warnings

    with warnings.catch_warnings():  # "No ccache found", on import
        warnings.simplefilter("ignore")
        from paddle.utils.cpp_extension import extension_utils
    return extension_utils


def _import_built(module_dir, name):
    """Register the ops of a finished build (no compiler involved), or None."""
    so = os.path.join(module_dir, name + ".so")
    if not os.path.isfile(so):
        return None
    extension_utils = _extension_utils()
    with _quiet():
        # the loader paddle's own load() ends with, on 2.6 and 3.x
        return extension_utils._import_module_from_library(name, module_dir, False)


def _build(say):
    if sys.platform != "linux":
        raise KernelsUnavailable("the oneDNN kernels are built for Linux only (this is %s)" % sys.platform)
    libs, libdnnl = _paddle_libdnnl()
    if libdnnl is None:
        raise KernelsUnavailable("this paddle wheel ships no libdnnl (oneDNN) in %s" % libs)
    if _compiler() is None:
        raise KernelsUnavailable("no C++ compiler (c++/g++) on PATH")
    name = build_tag()
    root = os.path.join(cache_dir(), "kernels", "py%d%d" % sys.version_info[:2])
    module_dir = os.path.join(root, name)
    module = _import_built(module_dir, name)
    if module is not None:
        return module
    os.makedirs(root, exist_ok=True)
    lock = _lock(os.path.join(root, name + ".lock"))
    try:
        module = _import_built(module_dir, name)  # another process built it meanwhile
        if module is not None:
            return module
        include = find_headers()
        say("ppresvar: building the oneDNN CPU kernels for paddle %s once (about 30 s) in %s"
            % (paddle.__version__, module_dir))
        from paddle.utils.cpp_extension import load as cpp_load

        try:
            with _quiet() as out:
                module = cpp_load(name=name, sources=_SOURCES, extra_include_paths=[include],
                         extra_cxx_cflags=_CFLAGS,
                         extra_ldflags=["-L" + libs, "-l:" + libdnnl, "-Wl,-rpath," + libs, "-fopenmp"],
                         build_directory=root, verbose=False)
        except Exception as e:  # the compiler's own words are in the log
            log = os.path.join(root, name + ".log")
            with open(log, "w") as f:
                f.write(out.getvalue() + "\n%r\n" % e)
            raise KernelsUnavailable("compiling the kernels failed (%s; see %s)" % (e.__class__.__name__, log))
        return module
    finally:
        lock.close()


# active: inside use(); allow_nhwc: use(channels_last=True); nhwc: inside a channels_last() region
_STATE = {"module": None, "error": None, "active": False, "allow_nhwc": False, "nhwc": False}


def load(say=print):
    """Build (once) and load the kernels; returns the op module or raises
    :class:`KernelsUnavailable`. ``say`` prints the one line shown while it
    compiles."""
    if _STATE["module"] is not None:
        return _STATE["module"]
    if _STATE["error"] is not None:
        raise KernelsUnavailable(_STATE["error"])
    if os.environ.get("PPRESVAR_NO_ONEDNN"):
        _STATE["error"] = "PPRESVAR_NO_ONEDNN is set"
        raise KernelsUnavailable(_STATE["error"])
    try:
        _STATE["module"] = _build(say)
    except KernelsUnavailable as e:
        _STATE["error"] = str(e)
        raise
    except Exception as e:  # a broken cache or library: fall back, with why
        _STATE["error"] = "%s: %s" % (e.__class__.__name__, e)
        raise KernelsUnavailable(_STATE["error"])
    return _STATE["module"]


def available(say=print):
    """``(True, None)`` or ``(False, reason)``."""
    try:
        load(say)
        return True, None
    except KernelsUnavailable as e:
        return False, str(e)


def resolve(mode, device, say=print, warn=None):
    """Decide the kernels for a run: ``mode`` is ``auto``, ``onednn`` or
    ``paddle``. Returns ``"onednn"`` or ``"paddle"``; ``auto`` falls back with
    one ``warn`` line saying why; ``onednn`` raises KernelsUnavailable."""
    if mode not in MODES:
        raise ValueError("cpu_kernels must be one of %s, not %r" % ("/".join(MODES), mode))
    if device != "cpu" or mode == "paddle":
        return "paddle"
    ok, why = available(say)
    if ok:
        return "onednn"
    if mode == "onednn":
        raise KernelsUnavailable(why)
    (warn or say)("ppresvar: oneDNN CPU kernels unavailable (%s); training with paddle's kernels" % why)
    return "paddle"


@contextlib.contextmanager
def use(enabled=True, channels_last=True):
    """Run convolutions through the oneDNN kernels inside this block
    (``enabled`` False: through paddle's); ``channels_last``: models that
    can keep their activations NHWC do (module docstring)."""
    if enabled:
        load()
    previous = _STATE["active"], _STATE["allow_nhwc"]
    _STATE["active"] = bool(enabled)
    _STATE["allow_nhwc"] = bool(enabled and channels_last)
    try:
        yield
    finally:
        _STATE["active"], _STATE["allow_nhwc"] = previous


def active():
    return _STATE["active"]


def channels_last_allowed(x):
    """Whether a model may open a :func:`channels_last` region for input
    ``x``: inside ``use(channels_last=True)``, eager, CPU float32 4-D, and
    not already in one."""
    return _STATE["allow_nhwc"] and not _STATE["nhwc"] and _applies(x)


@contextlib.contextmanager
def channels_last():
    """A region whose 4-D activations are NHWC (opened by a model that
    transposes its input on entry and its output on exit)."""
    previous = _STATE["nhwc"]
    _STATE["nhwc"] = True
    try:
        yield
    finally:
        _STATE["nhwc"] = previous


def nhwc():
    """True inside a :func:`channels_last` region."""
    return _STATE["nhwc"]


def channel_count(x):
    """The channels of a 4-D activation in the current layout."""
    return x.shape[3 if _STATE["nhwc"] else 1]


def per_channel(t):
    """A (N, C) or (N, 1) tensor shaped to broadcast on activations of the
    current layout: (N, C, 1, 1), or (N, 1, 1, C) in a channels-last region."""
    return t.unsqueeze([1, 2]) if _STATE["nhwc"] else t.unsqueeze([2, 3])


def _pair(v):
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    if len(v) == 1:
        return [int(v[0])] * 2
    if len(v) == 2 and all(isinstance(i, int) for i in v):
        return [int(i) for i in v]
    return None


def _applies(x):
    """Inside :func:`use`, in eager mode, on a 4-D CPU float32 tensor."""
    return (_STATE["active"] and paddle.in_dynamic_mode() and x.dtype == paddle.float32
            and x.place.is_cpu_place() and len(x.shape) == 4)


def _contiguous(x):
    # a strided view (paddle 3) reaches the kernels as a copy
    return x.contiguous() if hasattr(x, "is_contiguous") and not x.is_contiguous() else x


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``F.conv2d`` (NCHW; NHWC inside :func:`channels_last`), through
    oneDNN inside :func:`use` where supported."""
    if isinstance(padding, str) or groups != 1 or _pair(padding) is None or not _applies(x):
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        data_format="NHWC" if _STATE["nhwc"] else "NCHW")
    ops = _STATE["module"]
    x = _contiguous(x)
    args = (_pair(stride), _pair(padding), _pair(dilation), not x.stop_gradient, _STATE["nhwc"])
    if bias is None:
        return ops.ppresvar_conv2d(x, weight, *args)
    return ops.ppresvar_conv2d_bias(x, weight, bias, *args)


def shortcut_a(x, stride, pad):
    """Option-A shortcut: ``x[:, :, ::stride, ::stride]`` with ``pad`` zero
    channels appended (NHWC inside :func:`channels_last`); one kernel each
    way inside :func:`use`, else ``None`` (the caller builds it from paddle
    ops)."""
    if not _applies(x):
        return None
    return _STATE["module"].ppresvar_shortcut_a(_contiguous(x), int(stride), int(pad), _STATE["nhwc"])


def _bn_applies(x, bn):
    return (_applies(x) and bn.training and not getattr(bn, "_use_global_stats", False)
            and getattr(bn, "_data_format", "NCHW") == "NCHW" and bn.weight is not None
            and bn.bias is not None and channel_count(x) == bn.weight.shape[0])


def batch_norm(x, bn, relu=False, residual=None):
    """``act(bn(x) + residual)`` for a training-mode ``nn.BatchNorm2D``
    ``bn`` (``act``: ReLU if ``relu``, else none; ``residual`` optional), in
    one multi-threaded kernel each way inside :func:`use`, with ``bn``'s
    running statistics updated as paddle does (``m * running + (1 - m) *
    batch``, the biased batch variance); else ``None`` (the caller runs
    paddle's ops)."""
    if not _bn_applies(x, bn) or (residual is not None and list(residual.shape) != list(x.shape)):
        return None
    ops = _STATE["module"]
    x = _contiguous(x)
    layout = _STATE["nhwc"]
    if residual is None:
        y, mean, var = ops.ppresvar_bn_act(x, bn.weight, bn.bias, float(bn._epsilon), bool(relu), layout)
    else:
        y, mean, var = ops.ppresvar_bn_add_act(x, bn.weight, bn.bias, _contiguous(residual), float(bn._epsilon),
                                               bool(relu), layout)
    m = float(bn._momentum)
    with paddle.no_grad():
        paddle.assign(bn._mean * m + mean * (1.0 - m), bn._mean)
        paddle.assign(bn._variance * m + var * (1.0 - m), bn._variance)
    return y


def dyrelu(x, r, init, pi=None):
    """Dynamic ReLU's apply ``max_k (a_k x + b_k)`` (``a_k = init_k + pi
    r_k``, ``b_k = init_{K+k} + pi r_{K+k}``; ``r`` (N, 1 or C, 2K), ``pi``
    (N, 1, H, W) or None for 1) in one multi-threaded kernel each way inside
    :func:`use`; else ``None``."""
    if not _applies(x) or len(r.shape) != 3:
        return None
    if pi is None:
        pi = paddle.ones([x.shape[0], 1, 1, 1], dtype=x.dtype)
    return _STATE["module"].ppresvar_dyrelu(_contiguous(x), _contiguous(r), init, _contiguous(pi), _STATE["nhwc"])


def nam_gate(z, w, x):
    """NAM's channel gate ``sigmoid(z * w) * x`` (``z = bn(x)``, ``w`` one
    weight per channel) in one multi-threaded kernel each way inside
    :func:`use`; else ``None``."""
    if not _applies(x) or list(z.shape) != list(x.shape) or w.shape != [channel_count(x)]:
        return None
    return _STATE["module"].ppresvar_nam_gate(_contiguous(z), w, _contiguous(x), _STATE["nhwc"])


def channel_mean(x):
    """The global average pool as (N, C): one multi-threaded kernel each way
    inside :func:`use` (NHWC inside :func:`channels_last`); else ``None``."""
    if not _applies(x):
        return None
    return _STATE["module"].ppresvar_channel_mean(_contiguous(x), _STATE["nhwc"])


def add_relu(a, b):
    """``relu(a + b)`` (same shapes) in one multi-threaded kernel each way
    inside :func:`use`; else ``None``."""
    if not (_applies(a) and _applies(b)) or list(a.shape) != list(b.shape):
        return None
    return _STATE["module"].ppresvar_add_relu(_contiguous(a), _contiguous(b))
