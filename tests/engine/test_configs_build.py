"""Every file in configs/ loads, validates, and builds its model, optimizer,
LR schedule and data pipeline (on synthetic data standing in for its data set)."""
import copy
import glob
import os

import numpy as np
import paddle
import pytest

from ppresvar.data.loader import build_loader
from ppresvar.data.mixing import build_batch_transforms
from ppresvar.engine.builder import build_model
from ppresvar.engine.config import load_config, validate
from ppresvar.engine.losses import TrainLoss, to_soft_targets
from ppresvar.engine.optim import build_lr_scheduler, build_optimizer

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*.yaml")))
SIZES = {"Cifar10": 32, "Cifar100": 32, "Digits": 8, "ImageFolder": 200}


def synthetic(cfg):
    """The config with each data set replaced by a synthetic one of the same
    image size, channels and class count (transforms kept)."""
    cfg = copy.deepcopy(cfg)
    for section in cfg["DataLoader"].values():
        if not section:
            continue
        d = section["dataset"]
        classes = {"Cifar100": 100}.get(d["name"], 10)
        section["dataset"] = {"name": "Synthetic", "num_samples": 12, "num_classes": classes,
                              "image_size": SIZES[d["name"]], "channels": d.get("channels", 3),
                              "mode": d.get("mode", "train"), "subset": d["subset"],
                              "val_size": 4 if d["subset"] != "all" else 0}
        section.update(batch_size=4, num_workers=0)
    return validate(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds(path):
    cfg = synthetic(load_config(path))
    paddle.seed(0)
    loader, sampler, dataset = build_loader(cfg["DataLoader"]["Train"], "DataLoader.Train", training=True)
    ipe = len(sampler)
    total = cfg["Global"]["iterations"] or cfg["Global"]["epochs"] * ipe
    if cfg["Optimizer"]["lr"]["name"] == "MultiStep":  # the milestones of a full-length run
        total = max(total, cfg["Optimizer"]["lr"]["milestones"][-1] + 1)
    if cfg["Optimizer"]["lr"]["warmup"] >= total:
        total = cfg["Optimizer"]["lr"]["warmup"] + 100
    model = build_model(cfg)
    scheduler = build_lr_scheduler(cfg, ipe, total)
    optimizer = build_optimizer(cfg, model, scheduler)
    mixer = build_batch_transforms(cfg["DataLoader"]["Train"]["batch_transforms"])

    images, labels = next(iter(loader))
    assert images.dtype == paddle.float32 and images.shape[0] == 4
    targets = to_soft_targets(labels, cfg["Arch"]["num_classes"] or 10)
    if mixer is not None:
        images, targets = mixer(images, targets, np.random.RandomState(0))
    model.train()
    loss = TrainLoss.from_config(cfg)(model(images), targets, model)
    loss.backward()
    optimizer.step()
    scheduler.step()
    assert np.isfinite(float(loss))
    for split in ("Eval", "Test"):
        if cfg["DataLoader"][split]:
            ev, _, _ = build_loader(cfg["DataLoader"][split], "DataLoader." + split)
            x, _ = next(iter(ev))
            assert list(x.shape[1:]) == list(images.shape[1:])  # eval images fit the same model
