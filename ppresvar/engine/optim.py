"""Optimizers, LR schedules (``paddle.optimizer``) and an EMA of the weights.

One schedule unit for everything: with ``Optimizer.lr.unit: iteration`` the
warm-up length, the milestones and the cosine's length are counted in
iterations and the scheduler steps after every optimizer step; with
``epoch`` they are counted in epochs and it steps once an epoch. (The NAM seed
counted its warm-up in steps and its cosine in epochs and stepped both from a
patched callback.)
"""
import paddle
from paddle.optimizer import lr as lr_sched

from ..errors import ConfigError

__all__ = ["build_lr_scheduler", "build_optimizer", "param_groups", "ModelEMA", "schedule_length"]


def schedule_length(cfg, iters_per_epoch, total_iters):
    """Steps the schedule takes over the whole run, in its own unit."""
    if cfg["Optimizer"]["lr"]["unit"] == "iteration":
        return total_iters
    return -(-total_iters // iters_per_epoch)  # epochs, the last one possibly partial


def build_lr_scheduler(cfg, iters_per_epoch, total_iters):
    """A ``paddle.optimizer.lr.LRScheduler`` for ``Optimizer.lr``:
    ``Cosine`` (to ``eta_min`` at the end of training), ``MultiStep``
    (times ``gamma`` at each milestone) or ``Constant``, each behind an optional
    linear warm-up from ``warmup_start_lr`` (``LinearWarmup``; the main
    schedule starts counting when the warm-up ends). ``warmup_epochs``
    gives the warm-up in epochs, turned into the schedule's unit."""
    spec = cfg["Optimizer"]["lr"]
    base, warmup = spec["learning_rate"], spec["warmup"]
    if spec.get("warmup_epochs"):
        per_epoch = iters_per_epoch if spec["unit"] == "iteration" else 1
        warmup = int(round(spec["warmup_epochs"] * per_epoch))
    length = schedule_length(cfg, iters_per_epoch, total_iters)
    if warmup >= length:
        raise ConfigError("Optimizer.lr.warmup (%d %ss) must be shorter than training (%d %ss)"
                          % (warmup, spec["unit"], length, spec["unit"]))
    if spec["name"] == "Cosine":
        main = lr_sched.CosineAnnealingDecay(base, T_max=length - warmup, eta_min=spec["eta_min"])
    elif spec["name"] == "MultiStep":
        main = lr_sched.MultiStepDecay(base, milestones=[m - warmup for m in spec["milestones"]],
                                       gamma=spec["gamma"])
        if spec["milestones"][0] <= warmup:
            raise ConfigError("Optimizer.lr.milestones must come after the warm-up (%d)" % warmup)
    else:
        main = lr_sched.LambdaDecay(base, _constant)
    if warmup > 0:
        return lr_sched.LinearWarmup(main, warmup, spec["warmup_start_lr"], base)
    return main


def param_groups(model, weight_decay, exclude_bn_bias):
    """Parameter list for the optimizer; with ``exclude_bn_bias`` biases and
    normalisation scales/shifts (every 1-D parameter) get no weight decay."""
    params = [p for p in model.parameters() if not p.stop_gradient]
    if not exclude_bn_bias or not weight_decay:
        return params
    decay = [p for p in params if len(p.shape) > 1]
    no_decay = [p for p in params if len(p.shape) <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(cfg, model, scheduler):
    """``paddle.optimizer.{Momentum, SGD, Adam, AdamW}`` from ``Optimizer``.
    ``weight_decay`` is L2 added to the gradient (Momentum, SGD, Adam, as the
    seeds used it) or decoupled (AdamW)."""
    spec = cfg["Optimizer"]
    wd = spec["weight_decay"]
    params = param_groups(model, wd, spec["no_weight_decay_bn_bias"])
    clip = paddle.nn.ClipGradByGlobalNorm(spec["grad_clip"]) if spec["grad_clip"] else None
    common = dict(learning_rate=scheduler, parameters=params, grad_clip=clip)
    name = spec["name"]
    if name == "Momentum":
        return paddle.optimizer.Momentum(momentum=spec["momentum"], use_nesterov=spec["nesterov"],
                                         weight_decay=wd or None, **common)
    if name == "SGD":
        return paddle.optimizer.SGD(weight_decay=wd or None, **common)
    adam = dict(beta1=spec["beta1"], beta2=spec["beta2"], epsilon=spec["epsilon"])
    if name == "Adam":
        return paddle.optimizer.Adam(weight_decay=wd or None, **adam, **common)
    return paddle.optimizer.AdamW(weight_decay=wd, **adam, **common)


def _constant(step):
    return 1.0


class ModelEMA(object):
    """Exponential moving average of every floating-point entry of the
    model's state dict (parameters and BN statistics):
    ``ema = decay * ema + (1 - decay) * current`` after each optimizer step."""

    def __init__(self, model, decay):
        self.decay = float(decay)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @paddle.no_grad()
    def update(self, model):
        d = self.decay
        for k, v in model.state_dict().items():
            e = self.state[k]
            if paddle.is_floating_point(v):
                e.set_value(e * d + v.detach() * (1.0 - d))
            else:
                e.set_value(v.detach())

    def state_dict(self):
        return self.state

    def set_state_dict(self, state):
        for k, v in state.items():
            self.state[k].set_value(v)


class swap_weights(object):
    """``with swap_weights(model, ema.state):`` evaluates with the EMA weights,
    then restores the trained ones."""

    def __init__(self, model, state):
        self.model, self.state = model, state

    def __enter__(self):
        if self.state is not None:
            self.saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.set_state_dict(self.state)
        return self.model

    def __exit__(self, *exc):
        if self.state is not None:
            self.model.set_state_dict(self.saved)
        return False
