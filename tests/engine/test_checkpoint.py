"""Checkpoints: atomic writes, clear errors, weights that must fit the model."""
import errno
import io
import os
import random

import numpy as np
import paddle
import pytest

import ppresvar
from ppresvar.engine import checkpoint as ck
from ppresvar.errors import CheckpointError


def _state(model, **kw):
    state = {"model": model.state_dict(), "optimizer": {}, "lr_scheduler": {}, "ema": None, "epoch": 1,
             "step": 10, "best_metric": 0.5, "rng": ck.rng_state(), "config": {}, "arch": "resnet20"}
    state.update(kw)
    return state


def test_save_is_atomic_and_round_trips(tmp_path):
    model = ppresvar.create_model("resnet20")
    path = str(tmp_path / "ck" / "last.pdckpt")
    ck.save_checkpoint(path, _state(model))
    assert os.listdir(str(tmp_path / "ck")) == ["last.pdckpt"]  # no temporary file left
    state = ck.load_checkpoint(path)
    assert state["format_version"] == ck.FORMAT_VERSION and state["epoch"] == 1 and state["arch"] == "resnet20"
    other = ppresvar.create_model("resnet20")
    ck.load_weights(other, state)
    np.testing.assert_array_equal(other.fc.weight.numpy(), model.fc.weight.numpy())


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch, where):
    """A write that fails for want of space (simulated where it surfaces:
    the flush to disk, or the rename) raises one CheckpointError naming the
    file, the cause and the fix; the previous file is intact, no partial
    file is left."""
    model = ppresvar.create_model("resnet20")
    path = str(tmp_path / "last.pdckpt")
    ck.save_checkpoint(path, _state(model, epoch=1))
    before = open(path, "rb").read()

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, where, full)
    with pytest.raises(CheckpointError) as e:
        ck.save_checkpoint(path, _state(model, epoch=2))
    monkeypatch.undo()
    msg = str(e.value)
    assert path in msg and "No space left on device" in msg and "previous last.pdckpt is intact" in msg
    assert "Free some disk space" in msg and "--resume %s" % tmp_path.parent in msg
    assert open(path, "rb").read() == before and os.listdir(str(tmp_path)) == ["last.pdckpt"]


def test_stale_partial_files_are_removed(tmp_path):
    (tmp_path / "last.pdckpt").write_bytes(b"kept")
    (tmp_path / (ck.TMP_PREFIX + "last.pdckpt.123")).write_bytes(b"half")
    ck.remove_stale_temporaries(str(tmp_path))
    assert os.listdir(str(tmp_path)) == ["last.pdckpt"]


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None])
def test_corrupt_or_missing_checkpoint(tmp_path, content):
    path = str(tmp_path / "x.pdckpt")
    if content is not None:
        open(path, "wb").write(content)
    with pytest.raises(CheckpointError) as e:
        ck.load_checkpoint(path)
    assert path in str(e.value)


def test_truncated_checkpoint(tmp_path):
    path = str(tmp_path / "x.pdckpt")
    ck.save_checkpoint(path, _state(ppresvar.create_model("resnet20")))
    blob = open(path, "rb").read()
    open(path, "wb").write(blob[:len(blob) // 2])
    with pytest.raises(CheckpointError):
        ck.load_checkpoint(path)


def test_weights_of_another_model_are_refused():
    state = _state(ppresvar.create_model("resnet32"), arch="resnet32")
    with pytest.raises(CheckpointError) as e:
        ck.load_weights(ppresvar.create_model("resnet20"), state, source="r32.pdckpt")
    msg = str(e.value)
    assert "r32.pdckpt" in msg and "resnet32" in msg and "unexpected" in msg and "stages.0.3" in msg
    state = _state(ppresvar.create_model("resnet20", num_classes=100))
    with pytest.raises(CheckpointError) as e:
        ck.load_weights(ppresvar.create_model("resnet20"), state)
    assert "shape mismatch" in str(e.value) and "fc.weight" in str(e.value)


def test_ema_weights_are_used_when_asked():
    model = ppresvar.create_model("resnet20")
    ema = {k: v * 0 + 0.5 for k, v in model.state_dict().items()}
    state = _state(model, ema=ema)
    target = ppresvar.create_model("resnet20")
    ck.load_weights(target, state, use_ema=True)
    assert np.allclose(target.fc.weight.numpy(), 0.5)
    ck.load_weights(target, state, use_ema=False)
    np.testing.assert_array_equal(target.fc.weight.numpy(), model.fc.weight.numpy())


def test_plain_state_dict_file(tmp_path):
    model = ppresvar.create_model("resnet20")
    path = str(tmp_path / "w.pdparams")
    paddle.save(model.state_dict(), path)
    target = ppresvar.create_model("resnet20")
    ck.load_weights(target, path)
    np.testing.assert_array_equal(target.fc.weight.numpy(), model.fc.weight.numpy())


def test_rng_state_round_trip(tmp_path):
    path = str(tmp_path / "r.pdckpt")
    random.seed(1)
    np.random.seed(2)
    paddle.seed(3)
    ck.save_checkpoint(path, {"model": {}, "rng": ck.rng_state()})
    expected = (random.random(), np.random.rand(), paddle.rand([1]).numpy()[0])
    random.seed(9)
    np.random.seed(9)
    paddle.seed(9)
    ck.set_rng_state(ck.load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), paddle.rand([1]).numpy()[0]) == expected


def test_optimizer_state_survives_other_parameter_names():
    # paddle names parameters by a per-process counter (conv2d_57.w_0): a
    # second model in the same process has other names than the saved ones
    def make():
        m = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
        return m, paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=m.parameters())

    x = paddle.to_tensor(np.random.RandomState(0).randn(2, 3, 5, 5).astype("float32"))
    c = paddle.to_tensor(np.random.RandomState(1).randn(2, 4, 3, 3).astype("float32"))
    m1, o1 = make()
    (m1(x) * c).sum().backward()
    o1.step()
    saved = paddle.load(io.BytesIO(ck.serialize(ck.optimizer_state(o1, m1))))  # as written to disk
    assert all(k.startswith("@") for k in saved if k != "LR_Scheduler")
    m2, o2 = make()
    m3, o3 = make()  # control: the same weights without the optimizer state
    assert m2[0].weight.name != m1[0].weight.name
    m2.set_state_dict(m1.state_dict())
    m3.set_state_dict(m1.state_dict())
    ck.load_optimizer_state(o2, m2, saved)
    for m, o in ((m1, o1), (m2, o2), (m3, o3)):
        o.clear_grad()
        (m(x) * c).sum().backward()
        o.step()
    np.testing.assert_allclose(m2[0].weight.numpy(), m1[0].weight.numpy(), rtol=1e-5, atol=1e-7)
    assert np.abs(m3[0].weight.numpy() - m1[0].weight.numpy()).max() > 1e-3
