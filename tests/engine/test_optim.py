"""LR schedules in one unit, optimizers, weight decay exclusion, clipping, EMA."""
import os

import numpy as np
import paddle
import pytest

from ppresvar.engine.config import load_config, validate
from ppresvar.engine.optim import ModelEMA, build_lr_scheduler, build_optimizer, param_groups, swap_weights
from ppresvar.errors import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def lrs(scheduler, at):
    """LR used by iteration i (0-based) for each i in ``at``."""
    out, i = {}, 0
    for target in sorted(at):
        while i < target:
            scheduler.step()
            i += 1
        out[target] = scheduler.get_lr() if hasattr(scheduler, "get_lr") else scheduler()
    return out


def test_resnet20_he_schedule():
    cfg = load_config(os.path.join(CONFIGS, "resnet20.yaml"))
    ipe = 352  # 45,000 images / 128, last batch kept
    sched = build_lr_scheduler(cfg, ipe, cfg["Global"]["iterations"])
    got = lrs(sched, [0, 31999, 32000, 47999, 48000, 63999])
    assert got[0] == pytest.approx(0.1) and got[31999] == pytest.approx(0.1)
    assert got[32000] == pytest.approx(0.01) and got[47999] == pytest.approx(0.01)
    assert got[48000] == pytest.approx(0.001) and got[63999] == pytest.approx(0.001)


def test_resnet110_warms_up_then_keeps_the_milestones():
    cfg = load_config(os.path.join(CONFIGS, "resnet110.yaml"))
    got = lrs(build_lr_scheduler(cfg, 352, 64000), [0, 200, 400, 31999, 32000, 48000])
    assert got[0] == pytest.approx(0.01) and got[200] == pytest.approx(0.055) and got[400] == pytest.approx(0.1)
    assert got[31999] == pytest.approx(0.1) and got[32000] == pytest.approx(0.01)
    assert got[48000] == pytest.approx(0.001)


def test_nam_warmup_and_cosine_count_in_one_unit():
    cfg = load_config(os.path.join(CONFIGS, "resnet50_nam_cifar100.yaml"))
    ipe = 176
    total = cfg["Global"]["epochs"] * ipe
    got = lrs(build_lr_scheduler(cfg, ipe, total), [0, 1000, 2000, 2000 + (total - 2000) // 2, total - 1])
    assert got[0] == pytest.approx(0.0) and got[1000] == pytest.approx(0.005)
    assert got[2000] == pytest.approx(0.01)
    assert got[2000 + (total - 2000) // 2] == pytest.approx(0.005, rel=1e-3)  # cosine half-way
    assert got[total - 1] < 1e-6  # fully decayed when training ends (the seed: ~80% of peak)


def test_per_epoch_unit_and_warmup_epochs():
    cfg = validate({"Arch": {"name": "resnet20"}, "Optimizer": {"lr": {
        "name": "Cosine", "learning_rate": 1.0, "unit": "epoch", "warmup_epochs": 2}}})
    got = lrs(build_lr_scheduler(cfg, iters_per_epoch=10, total_iters=60), [0, 1, 2, 4])
    assert got[0] == 0 and got[1] == pytest.approx(0.5) and got[2] == pytest.approx(1.0)
    assert got[4] == pytest.approx(0.5)  # epochs 2..6: cosine over 4 epochs
    cfg["Optimizer"]["lr"]["unit"] = "iteration"
    got = lrs(build_lr_scheduler(cfg, iters_per_epoch=10, total_iters=60), [10, 20])
    assert got[10] == pytest.approx(0.5) and got[20] == pytest.approx(1.0)  # 2 epochs = 20 iterations


def test_warmup_longer_than_training_is_an_error():
    cfg = validate({"Arch": {"name": "resnet20"}, "Optimizer": {"lr": {"warmup": 50}}})
    with pytest.raises(ConfigError) as e:
        build_lr_scheduler(cfg, 10, 40)
    assert "warmup" in str(e.value)


def _tiny():
    paddle.seed(0)
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                                paddle.nn.Linear(4 * 6 * 6, 2))


def test_weight_decay_exclusion_groups():
    model = _tiny()
    groups = param_groups(model, 1e-4, exclude_bn_bias=True)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert groups[1]["weight_decay"] == 0.0
    assert decay == {id(model[0].weight), id(model[3].weight)}
    assert no_decay == {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[3].bias)}
    # with zero gradients, only decayed parameters move
    cfg = validate({"Arch": {"name": "resnet20"}, "Optimizer": {"name": "SGD", "weight_decay": 0.5,
                                                         "no_weight_decay_bn_bias": True}})
    opt = build_optimizer(cfg, model, 1.0)
    before = {id(p): p.numpy().copy() for p in model.parameters()}
    for p in model.parameters():
        (p * 0.0).sum().backward()
    opt.step()
    for p in model.parameters():
        moved = not np.allclose(p.numpy(), before[id(p)])
        assert moved == (id(p) in decay)


@pytest.mark.parametrize("name", ["Momentum", "SGD", "Adam", "AdamW"])
def test_optimizers_and_grad_clip(name):
    model = _tiny()
    cfg = validate({"Arch": {"name": "resnet20"}, "Optimizer": {"name": name, "grad_clip": 1e-3, "momentum": 0.0}})
    opt = build_optimizer(cfg, model, 1.0)
    x = paddle.to_tensor(np.random.RandomState(0).randn(2, 3, 8, 8).astype("float32"))
    (model(x).sum() * 1e6).backward()
    before = [p.numpy().copy() for p in model.parameters()]
    opt.step()
    step = np.sqrt(sum(((p.numpy() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    if name in ("Momentum", "SGD"):  # lr 1 x clipped gradient: a step of norm <= 1e-3
        assert 0 < step <= 1e-3 * 1.001
    else:
        assert step > 0


def test_ema_math_and_swap():
    model = _tiny()
    ema = ModelEMA(model, decay=0.75)
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.set_value(p.numpy() + 1.0)
    ema.update(model)
    w = model[0].weight.numpy()
    np.testing.assert_allclose(ema.state["0.weight"].numpy(), 0.75 * start["0.weight"] + 0.25 * w, rtol=1e-5)
    with swap_weights(model, ema.state):
        np.testing.assert_allclose(model[0].weight.numpy(), ema.state["0.weight"].numpy())
    np.testing.assert_allclose(model[0].weight.numpy(), w)  # restored
