"""Checkpoints: written atomically, read with clear errors, and loaded into a
model only when they fit it.

A checkpoint is one ``paddle.save`` file (``.pdckpt``) holding a dict:
``model``, ``optimizer``, ``lr_scheduler``, ``ema`` (or None), ``scaler`` (AMP,
or None), ``epoch`` (epochs completed), ``step`` (optimizer steps),
``best_metric``, ``best_epoch``, ``rng`` (Python, NumPy and paddle states),
``config`` (the resolved config), ``arch`` (the model name) and
``format_version``. Writing goes to a temporary file in the same folder,
then ``os.replace``: a crash mid-write leaves the previous file intact, and
a write that fails (a full disk) stops with one line saying so.
"""
import errno
import io
import os
import random
import sys

import numpy as np
import paddle

from .. import safetensors
from ..errors import CheckpointError
from . import faults

__all__ = ["FORMAT_VERSION", "save_checkpoint", "save_checkpoints", "load_checkpoint", "load_weights",
           "optimizer_state", "load_optimizer_state", "rng_state", "set_rng_state", "serialize",
           "remove_stale_temporaries", "TMP_PREFIX", "in_a_run_directory"]

FORMAT_VERSION = 1
_WARNED = set()  # pickle files from outside a run directory already warned about
TMP_PREFIX = ".partial-"  # a checkpoint being written: <folder>/.partial-<name>.<pid>


def serialize(state):
    buf = io.BytesIO()
    paddle.save(state, buf)
    return buf.getvalue()


def _write_atomic(path, blob, epoch=None):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, "%s%s.%d" % (TMP_PREFIX, os.path.basename(path), os.getpid()))
    tag = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(tmp, "wb") as f:
            half = len(blob) // 2
            f.write(blob[:half])
            f.flush()
            faults.point("ckpt-write", epoch, tag)
            f.write(blob[half:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        kept = "the previous %s is intact" % os.path.basename(path) if os.path.isfile(path) else \
            "no earlier %s existed" % os.path.basename(path)
        raise CheckpointError("cannot write checkpoint %s (%s); %s. %s, then continue with --resume %s"
                              % (path, e.strerror or e, kept,
                                 "Free some disk space" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                                 else "Fix the folder (permissions, space)", os.path.dirname(folder)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    faults.point("ckpt-written", epoch, tag)


def remove_stale_temporaries(folder):
    """Delete the partial files a killed process left in ``folder`` (call
    it holding the run's lock: no other writer can be using them)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(TMP_PREFIX):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def save_checkpoint(path, state):
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``)."""
    save_checkpoints([path], state)


def save_checkpoints(paths, state):
    """Serialise once, write to every path in ``paths`` in turn, each
    atomically. The trainer passes best before last: a kill between them
    leaves last at the previous epoch, so the resume redoes this epoch and
    rewrites best; the other order would leave a last that believes in a
    best file never written."""
    state = dict(state)
    state.setdefault("format_version", FORMAT_VERSION)
    blob = serialize(state)
    for path in paths:
        _write_atomic(path, blob, state.get("epoch"))


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; a missing,
    truncated or foreign file raises :class:`CheckpointError`."""
    if not path or not os.path.isfile(path):
        raise CheckpointError("checkpoint not found: %s (runs keep theirs in <run>/checkpoints/last.pdckpt "
                              "and best.pdckpt)" % path)
    with open(path, "rb") as f:
        blob = f.read()
    try:
        if not blob.startswith(b"\x80"):  # not a pickle: do not let the unpickler guess at it
            raise ValueError("no pickle header")
        if not in_a_run_directory(path) and os.path.abspath(path) not in _WARNED:
            _WARNED.add(os.path.abspath(path))  # once per file and process
            sys.stderr.write("warning: %s is a pickle file from outside a run directory: unpickling can run "
                             "code, so load only checkpoints you trust; to share weights, use the "
                             "model.safetensors of tools/export.py (reading it runs no code)\n" % path)
        state = paddle.load(io.BytesIO(blob))
    except Exception as e:  # paddle.load raises many types for damaged files
        raise CheckpointError("cannot read checkpoint %s (%s): the file is damaged or not a paddle "
                              "checkpoint; use another one, e.g. the run's last.pdckpt or best.pdckpt"
                              % (path, type(e).__name__))
    if not isinstance(state, dict):
        raise CheckpointError("%s is not a ppresvar checkpoint (it holds a %s)" % (path, type(state).__name__))
    return state


def in_a_run_directory(path):
    """Whether ``path`` is ``<run>/checkpoints/<file>`` of a run directory
    (one with its ``config.yaml``), as tools/train.py writes them."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.basename(folder) == "checkpoints" and os.path.isfile(
        os.path.join(os.path.dirname(folder), "config.yaml"))


_FLOATS = ("float16", "float32", "float64")


def _as_dtype_of(value, own):
    """A numpy weight in the dtype of the model's tensor ``own`` when both are
    floating point: weights kept in float16 (results/ keeps some so, to halve
    their size) load into a float32 model as the float32 values they round to."""
    want = str(own.dtype).replace("paddle.", "")
    if isinstance(value, np.ndarray) and value.dtype.name in _FLOATS and want in _FLOATS and value.dtype.name != want:
        return value.astype(want)
    return value


def _is_training_checkpoint(state):
    # a plain state dict maps names to tensors; a checkpoint's "model" is a dict
    return isinstance(state.get("model"), dict)


def load_weights(model, path_or_state, use_ema=True, source=None):
    """Load weights into ``model`` from a checkpoint path, a
    ``.safetensors`` file (tools/export.py's ``model.safetensors``: no pickle,
    the way to share weights), a checkpoint dict or a plain state dict. ``use_ema`` takes the EMA
    weights when the checkpoint has them. Raises :class:`CheckpointError`
    when the weights belong to another model (missing or unexpected keys,
    shape mismatches). Returns the checkpoint dict (or ``{}``)."""
    if isinstance(path_or_state, str) and safetensors.is_safetensors(path_or_state):
        source = path_or_state
        state = safetensors.load(path_or_state)[0]  # no pickle: safe from anyone
    elif isinstance(path_or_state, str):
        source = path_or_state
        state = load_checkpoint(path_or_state)
    else:
        state = path_or_state
    source = source or "the checkpoint"
    ckpt = state if _is_training_checkpoint(state) else {}
    if ckpt:
        weights = ckpt["ema"] if (use_ema and ckpt.get("ema")) else ckpt["model"]
    else:
        weights = state
    if not isinstance(weights, dict):
        raise CheckpointError("%s holds no model weights" % source)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    mismatched = ["%s %s vs %s" % (k, list(weights[k].shape), list(v.shape)) for k, v in own.items()
                  if k in weights and list(weights[k].shape) != list(v.shape)]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                parts.append("%d %s (%s%s)" % (len(items), label, ", ".join(items[:3]),
                                                ", ..." if len(items) > 3 else ""))
        arch = ckpt.get("arch")
        whose = " (it holds %s weights)" % arch if arch else ""
        raise CheckpointError("%s does not fit this model%s: %s; use a checkpoint of the same Arch "
                              "(name, num_classes and options)" % (source, whose, "; ".join(parts)))
    model.set_state_dict({k: _as_dtype_of(v, own[k]) for k, v in weights.items()})
    return ckpt


# ------------------------------------------------------------ optimizer state

def _by_prefix(pairs):
    return sorted(pairs, key=lambda t: -len(t[0]))


def _rename(key, pairs, sep_in, sep_out):
    for old, new in pairs:
        if key == old or key.startswith(old + sep_in):
            return new + sep_out + key[len(old) + len(sep_in):] if key != old else new
    return key


def _rename_state(d, pairs, sep_in, sep_out, prefixed_only=False):
    """``d`` with every key renamed by ``pairs`` (nested dicts too; the LR
    scheduler's own state is left alone). ``prefixed_only``: touch only keys
    starting with ``@`` (the structured names), so a plain paddle state dict
    passes through."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and key != "LR_Scheduler":
            out[key] = _rename_state(value, pairs, sep_in, sep_out, prefixed_only)
        elif prefixed_only and not key.startswith("@"):
            out[key] = value
        else:
            out[_rename(key, pairs, sep_in, sep_out)] = value
    return out


def optimizer_state(optimizer, model):
    """``optimizer.state_dict()`` keyed by the model's structured names
    (``stages.0.0.conv1.weight|velocity_0``) instead of paddle's global
    parameter names (``conv2d_3.w_0_velocity_0``), which depend on how many
    layers the process built before: a resume in another process, or a second
    model in the same one, would silently miss them."""
    pairs = _by_prefix([(p.name, "@" + k) for k, p in model.named_parameters()])
    return _rename_state(optimizer.state_dict(), pairs, "_", "|")


def load_optimizer_state(optimizer, model, state):
    """Inverse of :func:`optimizer_state` (plain paddle state dicts pass through)."""
    pairs = _by_prefix([("@" + k, p.name) for k, p in model.named_parameters()])
    optimizer.set_state_dict(_rename_state(state, pairs, "|", "_", prefixed_only=True))


# ------------------------------------------------------------------ RNG state

def rng_state():
    """Python, NumPy and paddle generator states (NumPy's key as a list:
    paddle.save would turn its uint32 array into a tensor it cannot load)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, [int(k) for k in keys], pos, has_gauss, cached]}
    try:
        state["paddle"] = paddle.get_rng_state()
    except Exception:  # older builds without a picklable generator state
        state["paddle"] = None
    return state


def set_rng_state(state):
    if not state:
        return
    if state.get("python") is not None:
        random.setstate(_as_tuple(state["python"]))
    if state.get("numpy") is not None:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    if state.get("paddle") is not None:
        try:
            paddle.set_rng_state(state["paddle"])
        except Exception:
            pass


def _as_tuple(value):
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
