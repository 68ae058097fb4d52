"""Weights as safetensors, read and written here with numpy (no package, no
pickle): the documented way to share weights, because reading one runs no
code, whoever made it. Checkpoints (``.pdckpt``) are pickle files: load
only your own.

The format (https://github.com/huggingface/safetensors): an 8-byte
little-endian header length N, N bytes of JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the data
that follows; ``"__metadata__"`` holds strings), then the data, row-major,
little-endian. Files written by the ``safetensors`` package read here and the
other way round. :func:`load` checks the header against the file (sizes,
offsets, dtypes, shapes) and raises :class:`CheckpointError` naming the file
and the fault.
"""
import json
import os
import struct

import numpy as np

from .errors import CheckpointError

__all__ = ["save", "load", "is_safetensors", "MAX_HEADER"]

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?"}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # the package's own limit


def _code(array):
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if dtype not in _CODES:
        raise ValueError("no safetensors dtype for %s" % array.dtype)
    return _CODES[dtype]


def save(tensors, path, metadata=None):
    """Write ``{name: numpy array}`` to ``path`` (atomically)."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        a = a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray makes scalars 1-d)
        code = _code(a)
        blob = a.astype(_DTYPES[code], copy=False).tobytes()
        header[name] = {"dtype": code, "shape": [int(d) for d in a.shape], "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = "%s.partial-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for blob in blobs:
                f.write(blob)
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

    def bad(why):
        return CheckpointError("%s is not a readable safetensors file (%s): the file is damaged or of another "
                               "format; export the weights again with tools/export.py" % (path, why))

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise bad("shorter than its 8-byte header length")
        n = struct.unpack("<Q", head)[0]
        if n > MAX_HEADER or 8 + n > size:
            raise bad("a header of %d bytes in a file of %d" % (n, size))
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad("its header is not JSON")
        data = f.read()
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    tensors, spans = {}, []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = _DTYPES[info["dtype"]], [int(d) for d in info["shape"]], info["data_offsets"]
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise bad("tensor %r has a malformed entry" % name)
        count = int(np.prod(shape)) if shape else 1
        if min(shape + [0]) < 0 or not 0 <= begin <= end <= len(data) or end - begin != count * np.dtype(dtype).itemsize:
            raise bad("tensor %r: shape %s and offsets [%d, %d] do not fit %d bytes of data"
                      % (name, shape, begin, end, len(data)))
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(shape).copy()
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise bad("tensors %r and %r overlap" % (n0, n1))
    return tensors, metadata
