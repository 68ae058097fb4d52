"""The training loop, in process, on tiny synthetic data."""
import json
import os

import numpy as np
import pytest
import yaml

from ppresvar.engine.checkpoint import load_checkpoint
from ppresvar.engine.config import apply_overrides, validate
from ppresvar.engine.evaluator import evaluate_config
from ppresvar.engine.logger import EPOCH_KEYS, read_metrics
from ppresvar.engine.trainer import Trainer, train
from ppresvar.errors import TrainingError

TIMING = ("epoch_time_s", "images_per_s")


def tiny(tmp_path, *overrides):
    data = {"name": "Synthetic", "num_samples": 64, "image_size": 16, "num_classes": 4, "val_size": 16}
    norm = [{"NormalizeImage": {"mean": [0.5] * 3, "std": [0.25] * 3}}]
    raw = {
        "Global": {"output_dir": str(tmp_path), "epochs": 2, "seed": 3, "run_name": "run",
                   "use_visualdl": False},
        "Arch": {"name": "resnet20"},
        "Loss": {"label_smoothing": 0.1},
        "Optimizer": {"name": "Momentum", "weight_decay": 1e-4, "lr": {"learning_rate": 0.05, "warmup": 2}},
        "DataLoader": {
            "Train": {"dataset": dict(data, subset="train"), "batch_size": 16, "drop_last": True,
                      "transforms": [{"RandomCrop": {"size": 16, "padding": 2}}] + norm,
                      "batch_transforms": [{"Mixup": {"alpha": 0.4}}]},
            "Eval": {"dataset": dict(data, subset="val"), "batch_size": 10, "transforms": norm},
            "Test": {"dataset": dict(data, mode="test", num_samples=20), "batch_size": 10, "transforms": norm},
        },
    }
    return validate(apply_overrides(raw, overrides))


def strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_a_run_writes_its_directory(tmp_path):
    summary = train(tiny(tmp_path))
    run = summary["run_dir"]
    assert run == os.path.join(str(tmp_path), "run")
    records = read_metrics(os.path.join(run, "metrics.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert tuple(r) == EPOCH_KEYS
        assert all(isinstance(r[k], float) for k in EPOCH_KEYS if k != "epoch")
        assert 0 <= r["val_top1"] <= r["val_top5"] <= 1
    cfg = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    assert validate(cfg)["Arch"]["num_classes"] == 4  # resolved from the data
    assert os.path.isfile(os.path.join(run, "train.log"))
    state = load_checkpoint(os.path.join(run, "checkpoints", "last.pdckpt"))
    for key in ("model", "optimizer", "lr_scheduler", "ema", "epoch", "step", "best_metric", "rng",
                "config", "arch", "format_version"):
        assert key in state
    assert state["epoch"] == 2 and state["step"] == 6 and state["arch"] == "resnet20"
    best = max(records, key=lambda r: r["val_top1"])
    assert state["best_metric"] == best["val_top1"]
    assert load_checkpoint(os.path.join(run, "checkpoints", "best.pdckpt"))["epoch"] == best["epoch"]
    pytest.importorskip("matplotlib")
    assert os.path.getsize(os.path.join(run, "curves.png")) > 1000


def test_a_seeded_cpu_run_repeats_exactly(tmp_path):
    a = train(tiny(tmp_path / "a"))
    b = train(tiny(tmp_path / "b"))
    ra = read_metrics(os.path.join(a["run_dir"], "metrics.jsonl"))
    rb = read_metrics(os.path.join(b["run_dir"], "metrics.jsonl"))
    assert strip(ra) == strip(rb)
    c = train(tiny(tmp_path / "c", "Global.seed=4"))
    assert strip(read_metrics(os.path.join(c["run_dir"], "metrics.jsonl"))) != strip(ra)


def test_resume_in_process_continues_exactly(tmp_path, monkeypatch):
    # a crash at the start of epoch 3, then --resume; in one process, so the
    # resumed model's paddle parameter names differ from the saved ones
    full = train(tiny(tmp_path / "full", "Global.epochs=4"))
    original = Trainer.train_epoch

    def crash_at_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path / "part", "Global.epochs=4"))
    monkeypatch.undo()
    part_dir = os.path.join(str(tmp_path / "part"), "run")
    assert len(read_metrics(os.path.join(part_dir, "metrics.jsonl"))) == 2
    train(tiny(tmp_path / "part", "Global.epochs=4"), resume=part_dir)
    assert strip(read_metrics(os.path.join(part_dir, "metrics.jsonl"))) == \
        strip(read_metrics(os.path.join(full["run_dir"], "metrics.jsonl")))


def test_iterations_limit_and_epoch_unit(tmp_path):
    s = train(tiny(tmp_path, "Global.iterations=4", "Optimizer.lr.unit=epoch", "Optimizer.lr.warmup=0"))
    assert (s["epochs"], s["iterations"]) == (2, 4)  # 3 per epoch: the second epoch stops after one
    records = read_metrics(os.path.join(s["run_dir"], "metrics.jsonl"))
    assert records[0]["lr"] == pytest.approx(0.05) and records[1]["lr"] < 0.05


def test_the_test_split_is_never_read_while_training(tmp_path, monkeypatch):
    """Training builds the Train and Eval loaders only; a Test split that
    were read would also fail here (its archive does not exist)."""
    import ppresvar.engine.trainer as trainer_module

    built, real = [], trainer_module.build_loader

    def spy(section, where, *args, **kw):
        built.append(where)
        return real(section, where, *args, **kw)

    monkeypatch.setattr(trainer_module, "build_loader", spy)
    cfg = tiny(tmp_path, "DataLoader.Test.dataset={name: Cifar10, data_file: /nonexistent/c.tar.gz}")
    summary = train(cfg)
    assert summary["epochs"] == cfg["Global"]["epochs"]
    assert sorted(built) == ["DataLoader.Eval", "DataLoader.Train"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run = train(tiny(tmp_path, "Global.epochs=1"))["run_dir"]
    last = os.path.join(run, "checkpoints", "last.pdckpt")
    before = open(last, "rb").read()
    cfg = tiny(tmp_path, "Global.epochs=3", "Optimizer.lr.learning_rate=1e30", "Optimizer.lr.warmup=0")
    with pytest.raises(TrainingError) as e:
        train(cfg, resume=last)
    assert "nan" in str(e.value).lower() or "inf" in str(e.value).lower()
    assert last in str(e.value) and "epoch 1" in str(e.value)
    assert open(last, "rb").read() == before
    assert len(read_metrics(os.path.join(run, "metrics.jsonl"))) == 1


def test_ema_weights_are_validated_and_evaluated(tmp_path):
    s = train(tiny(tmp_path, "EMA.decay=0.5", "Global.epochs=1"))
    best = os.path.join(s["run_dir"], "checkpoints", "best.pdckpt")
    state = load_checkpoint(best)
    assert state["ema"] is not None
    logged = read_metrics(os.path.join(s["run_dir"], "metrics.jsonl"))[0]
    cfg = tiny(tmp_path, "EMA.decay=0.5")
    got = evaluate_config(cfg, "val", weights=best)
    assert got["ema"] and got["top1"] == pytest.approx(logged["val_top1"])
    assert got["loss"] == pytest.approx(logged["val_loss"], rel=1e-6)
    raw = evaluate_config(cfg, "val", weights=best, use_ema=False)
    assert not raw["ema"]
    test = evaluate_config(cfg, "test", weights=best)
    assert test["samples"] == 20


def test_pretrained_model_initialises_training(tmp_path):
    s = train(tiny(tmp_path / "a", "Global.epochs=1"))
    best = os.path.join(s["run_dir"], "checkpoints", "best.pdckpt")
    t = train(tiny(tmp_path / "b", "Global.epochs=1", "Optimizer.lr.learning_rate=1e-12",
                   "Optimizer.lr.warmup=0", "Global.pretrained_model=%s" % best,
                   "DataLoader.Train.batch_transforms=[]"))
    logged = read_metrics(os.path.join(s["run_dir"], "metrics.jsonl"))[0]
    again = read_metrics(os.path.join(t["run_dir"], "metrics.jsonl"))[0]
    # almost no learning: the validation figures are those of the loaded weights (BN stats move a little)
    assert abs(again["val_top1"] - logged["val_top1"]) <= 0.25


def test_a_new_run_never_overwrites_an_old_one(tmp_path):
    a = train(tiny(tmp_path, "Global.epochs=1"))["run_dir"]
    b = train(tiny(tmp_path, "Global.epochs=1"))["run_dir"]
    assert a != b and b.endswith("run-2")
    assert json.loads(open(os.path.join(a, "metrics.jsonl")).readline())["epoch"] == 1


def test_amp_on_cpu_warns_and_trains_in_float32(tmp_path):
    with pytest.warns(UserWarning, match="AMP needs a GPU"):
        s = train(tiny(tmp_path, "AMP.enable=true", "Global.epochs=1"))
    assert load_checkpoint(os.path.join(s["run_dir"], "checkpoints", "last.pdckpt"))["scaler"] is None


@pytest.mark.filterwarnings("ignore:AmpScaler can only be enabled", "ignore:amp_guard can only be enabled")
def test_amp_code_path_runs(tmp_path, monkeypatch):
    # auto_cast and GradScaler are GPU features; forced on here to run the code path
    import ppresvar.engine.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "setup_device", lambda cfg: ("cpu", True))
    s = train(tiny(tmp_path, "AMP.enable=true", "Global.epochs=1"))
    records = read_metrics(os.path.join(s["run_dir"], "metrics.jsonl"))
    assert np.isfinite(records[0]["train_loss"])


def test_cpu_channels_last_reaches_the_kernels_and_changes_no_result(tmp_path, monkeypatch):
    """Global.cpu_channels_last turns the NHWC region on and off; both train
    the same run up to float rounding (same data, same initial weights)."""
    from ppresvar import kernels

    if not kernels.available()[0]:
        pytest.skip("CPU kernels unavailable")
    seen = []
    real = kernels.use

    def spy(enabled=True, channels_last=True):
        seen.append((enabled, channels_last))
        return real(enabled, channels_last)

    monkeypatch.setattr(kernels, "use", spy)
    runs = {}
    for flag in ("true", "false"):
        cfg = tiny(tmp_path / flag, "Global.cpu_channels_last=%s" % flag, "Global.cpu_kernels=onednn")
        runs[flag] = read_metrics(os.path.join(train(cfg)["run_dir"], "metrics.jsonl"))
    assert seen == [(True, True), (True, False)]
    for a, b in zip(runs["true"], runs["false"]):  # (validation: running statistics of 16-image batches)
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3 and abs(a["val_loss"] / b["val_loss"] - 1) < 1e-2
