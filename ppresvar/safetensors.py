"""Weights as safetensors, through the ``safetensors`` package (a dependency
of ppresvar, and of paddle 3.x): the documented way to share weights,
because reading one runs no code, whoever made it. Checkpoints
(``.pdckpt``) are pickle files: load only your own.

This module adds what a training tool needs around the package: an atomic
write (a temporary file, then a rename) and one :class:`CheckpointError`
line naming the file and the fault for anything unreadable.
"""
import os

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from .errors import CheckpointError

__all__ = ["save", "load", "is_safetensors"]


def save(tensors, path, metadata=None):
    """Write ``{name: numpy array}`` to ``path`` (atomically); ``metadata``
    values are stored as strings."""
    arrays = {name: np.ascontiguousarray(a) if np.ndim(a) else np.asarray(a) for name, a in tensors.items()}
    tmp = "%s.partial-%d" % (path, os.getpid())
    try:
        save_file(arrays, tmp, metadata={str(k): str(v) for k, v in (metadata or {}).items()} or None)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def is_safetensors(path):
    return str(path).endswith(".safetensors")


def load(path):
    """``({name: numpy array}, metadata)`` from a safetensors file."""
    if not os.path.isfile(path):
        raise CheckpointError("weights not found: %s" % path)
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # the package's SafetensorError, OSError...
        why = " ".join(str(e).split()) or type(e).__name__
        raise CheckpointError("%s is not a readable safetensors file (%s): the file is damaged or of another "
                              "format; export the weights again with tools/export.py" % (path, why[:200]))
    return tensors, metadata
