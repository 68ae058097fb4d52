"""ppresvar.safetensors: the safetensors package behind an atomic write and
one-line errors. The files follow the specification byte for byte (8-byte
length, JSON header, row-major little-endian data), round-trip every dtype
and shape a state dict has, and a damaged file is one CheckpointError line
naming it."""
import json
import struct

import numpy as np
import pytest

from ppresvar import safetensors as st
from ppresvar.errors import CheckpointError

TENSORS = {
    "conv.weight": np.arange(24, dtype="float32").reshape(2, 3, 2, 2),
    "bn._mean": np.array([0.5, -1.25], dtype="float32"),
    "steps": np.array(7, dtype="int64"),            # a 0-d tensor
    "empty": np.zeros((0, 3), dtype="float32"),
    "mask": np.array([True, False]),
    "half": np.array([1.5, 2.0], dtype="float16"),
    "fortran": np.asfortranarray(np.arange(6, dtype="float64").reshape(2, 3)),
}


def _write_raw(path, header, data):
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def test_layout_follows_the_specification(tmp_path):
    path = str(tmp_path / "w.safetensors")
    st.save({"b": np.array([1, 2], "int32"), "a": np.array([[1.0]], "float32")}, path, metadata={"format": "x"})
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    assert (8 + n) % 8 == 0
    assert header["__metadata__"] == {"format": "x"}
    assert header["a"] == {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}
    assert header["b"] == {"dtype": "I32", "shape": [2], "data_offsets": [4, 12]}
    assert blob[8 + n:] == struct.pack("<f", 1.0) + struct.pack("<ii", 1, 2)


def test_round_trip_keeps_values_dtypes_and_shapes(tmp_path):
    path = str(tmp_path / "w.safetensors")
    st.save(TENSORS, path)
    back, meta = st.load(path)
    assert sorted(back) == sorted(TENSORS) and meta == {}
    for k, v in TENSORS.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)


def test_metadata_round_trips_and_a_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "w.safetensors")
    st.save(TENSORS, path, metadata={"format": "paddle-state-dict", "epoch": 3})
    assert st.load(path)[1] == {"format": "paddle-state-dict", "epoch": "3"}
    before = open(path, "rb").read()

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st, "save_file", fail)
    with pytest.raises(OSError):
        st.save({"x": np.zeros(2, "float32")}, path)
    assert open(path, "rb").read() == before                     # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]   # no partial file left


def _good_header():
    return {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize("damage, message", [
    (lambda p: open(p, "wb").write(b"\x01\x00"), "header too small"),
    (lambda p: open(p, "wb").write(struct.pack("<Q", 10 ** 12) + b"{}"), "header too large"),
    (lambda p: open(p, "wb").write(struct.pack("<Q", 5) + b"{nope"), "invalid JSON"),
    (lambda p: _write_raw(p, [1, 2], b""), "invalid JSON"),
    (lambda p: _write_raw(p, {"w": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "Q99"),
    (lambda p: _write_raw(p, {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "invalid"),
    (lambda p: _write_raw(p, _good_header(), b"\0" * 4), "not fully covered"),    # data cut short
    (lambda p: _write_raw(p, {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8), "-2"),
    (lambda p: _write_raw(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "offset"),
])
def test_damaged_files_are_refused_naming_the_file(tmp_path, damage, message):
    """One line: the file, that it is not readable safetensors, the package's reason
    (``message``: its words in safetensors 0.8)."""
    path = str(tmp_path / "w.safetensors")
    damage(path)
    with pytest.raises(CheckpointError) as e:
        st.load(path)
    text = str(e.value)
    assert text.startswith(path + " is not a readable safetensors file (") and "\n" not in text
    reason = text[len(path + " is not a readable safetensors file ("):].split("): the file is damaged")[0]
    # the package's own reason: its words vary by version (0.5: "HeaderTooSmall", 0.8: "header too small")
    assert reason.startswith("Error while deserializing header") or message in reason, reason


def test_truncated_real_file(tmp_path):
    path = str(tmp_path / "w.safetensors")
    st.save(TENSORS, path)
    blob = open(path, "rb").read()
    open(path, "wb").write(blob[:-10])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        st.load(path)
    with pytest.raises(CheckpointError, match="not found"):
        st.load(str(tmp_path / "absent.safetensors"))
