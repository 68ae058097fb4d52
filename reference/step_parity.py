#!/usr/bin/env python
"""Step-by-step parity of a training step, ppresvar against PyTorch: the same
weights, the same batches, the same SGD recipe, step after step.

    python reference/step_parity.py --torch-python <venv with torch>/bin/python [--steps 1,2,20] [--json FILE]
        [--config configs/X.yaml] [-o key=value ...]

The PyTorch side (reference/torch_reference.py --step-check) builds the
config's model (``Arch.name``, with ``Arch.widths`` and the DyReLU options
``dyrelu_init``, ``reduction``, ``dyrelu_gate``), draws the initial weights
and random batches of the config's batch size, trains ``--steps`` steps and
writes all of it; this side loads those weights into ppresvar's model and
trains on the same batches with the optimizer and the loss (label smoothing
included) that ``tools/train.py`` builds from the config (default
``configs/resnet20.yaml``: momentum 0.9, weight decay 1e-4 on every
parameter, batch norm included, as PyTorch's SGD), at the schedule's base
learning rate (both sides constant), on one process, with the kernels the
trainer uses. It prints each step's two losses, the largest loss difference,
and how far apart the final weights are against how far the steps moved
them. Only the framework differs: what is left is float rounding (the
kernels' summation order), which training amplifies from step to step on
random batches, so the first steps are the check (1 and 2 cover the update,
the weight decay on every parameter and the momentum), and the last check
compares with PyTorch float32 against itself on another thread count: how far
rounding alone parts two runs of one framework after the same steps.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import numpy as np  # noqa: E402

from ppresvar import runtime  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--torch-python", required=True, help="python of a venv with torch")
    p.add_argument("--steps", default="1,2,20", help="comma-separated step counts, each checked from the start")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the figures there (the ledger shows results/<experiment>/step_parity.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-c", "--config", default=os.path.join("configs", "resnet20.yaml"),
                   help="the recipe and model (relative to the repository; default %(default)s)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides, as tools/train.py takes them")
    p.add_argument("--kernels", default="auto", choices=("auto", "onednn", "paddle"))
    a = p.parse_args()
    runtime.apply_cpu_settings()
    import paddle

    from ppresvar import kernels
    from ppresvar.engine.builder import build_model
    from ppresvar.engine.config import load_config
    from ppresvar.engine.losses import TrainLoss, to_soft_targets
    from ppresvar.engine.optim import build_lr_scheduler, build_optimizer

    cfg = load_config(os.path.join(ROOT, a.config), a.override)
    if cfg["Optimizer"]["name"] != "Momentum" or cfg["Optimizer"]["no_weight_decay_bn_bias"]:
        p.error("the PyTorch side is SGD with momentum and weight decay on every parameter: %s is not" % a.config)
    cfg["Optimizer"]["lr"].update(name="Constant", warmup=0, warmup_epochs=None)  # the first steps, at the base rate
    paddle.set_device("cpu")
    runtime.set_cpu_threads()
    mode = kernels.resolve(a.kernels, "cpu", say=lambda m: None)
    command = ("python reference/step_parity.py --torch-python <venv with torch>/bin/python --steps %s --seed %d "
               "--kernels %s" % (a.steps, a.seed, a.kernels))
    if a.config != p.get_default("config") or a.override:
        command += " -c %s" % a.config + "".join(" -o %s" % shlex.quote(o) for o in a.override)
    arch = cfg["Arch"]
    report = {"command": command, "config": a.config, "overrides": a.override, "model": arch["name"],
              "recipe": {"batch": cfg["DataLoader"]["Train"]["batch_size"], "lr": cfg["Optimizer"]["lr"]["learning_rate"],
                         "momentum": cfg["Optimizer"]["momentum"], "weight_decay": cfg["Optimizer"]["weight_decay"],
                         "label_smoothing": cfg["Loss"]["label_smoothing"]},
              "kernels": mode, "seed": a.seed, "checks": []}
    if a.json:
        report["command"] += " --json %s" % os.path.relpath(os.path.abspath(a.json), ROOT)
    for steps in [int(n) for n in a.steps.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            ref = os.path.join(tmp, "steps.npz")
            subprocess.run([a.torch_python, os.path.join(ROOT, "reference", "torch_reference.py"), "--step-check", ref,
                            "--steps", str(steps), "--seed", str(a.seed)] + torch_arguments(cfg),
                           check=True, stdout=subprocess.DEVNULL)
            data = dict(np.load(ref))
        model = build_model(cfg)
        model.set_state_dict({k[2:]: paddle.to_tensor(v) for k, v in data.items() if k.startswith("w/")})
        sched = build_lr_scheduler(cfg, steps, steps)
        opt = build_optimizer(cfg, model, sched)
        loss_fn = TrainLoss.from_config(cfg)
        model.train()
        losses = []
        with kernels.use(mode == "onednn"):
            for x, y in zip(data["x"], data["y"]):
                loss = loss_fn(model(paddle.to_tensor(x)), to_soft_targets(paddle.to_tensor(y), 10), model)
                loss.backward()
                opt.step()
                opt.clear_grad()
                sched.step()
                losses.append(float(loss))
        theirs = data["loss"]
        final = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}

        def apart(weights, ref):
            """The largest difference of two sets of final weights, over what the
            steps changed that tensor by (float64 PyTorch's change)."""
            return max((float(np.abs(weights[k] - ref[k]).max() / np.abs(ref[k] - data["w/" + k]).max()), k)
                       for k in ref if np.abs(ref[k] - data["w/" + k]).max() > 0)

        f64 = {k[2:]: v for k, v in data.items() if k.startswith("d/")}
        f32 = {k[2:]: v.astype(np.float64) for k, v in data.items() if k.startswith("f/")}
        t32 = {k[2:]: v.astype(np.float64) for k, v in data.items() if k.startswith("t/")}
        check = {"steps": steps, "loss_diff": max(abs(m - t) for m, t in zip(losses, theirs)),
                 "ppresvar_vs_torch64": apart(final, f64)[0], "torch32_vs_torch64": apart(f32, f64)[0],
                 "ppresvar_vs_torch32": apart(final, f32)[0], "torch32_threads": [int(v) for v in data["threads"]],
                 "torch32_vs_torch32_other_threads": apart(t32, f32)[0]}
        report["checks"].append(check)
        print("== %d steps, kernels %s: largest loss difference %.2e" % (steps, mode, check["loss_diff"]))
        print("final weights apart, as a share of what the steps changed the tensor by (the largest):")
        print("  ppresvar float32 vs PyTorch float64: %.2e (%s)" % apart(final, f64))
        print("  PyTorch float32 vs PyTorch float64:  %.2e (%s)   <- float32 rounding alone" % apart(f32, f64))
        print("  ppresvar float32 vs PyTorch float32: %.2e (%s)" % apart(final, f32))
        print("  PyTorch float32, %d vs %d threads:    %.2e (%s)   <- two float32 runs of one framework"
              % (tuple(check["torch32_threads"]) + apart(t32, f32)))
    if a.json:
        from reproduction.runner import machine

        report.update(paddle=paddle.__version__, machine=machine())
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
        print("wrote %s" % a.json)
    return report


def torch_arguments(cfg):
    """reference/torch_reference.py's options for the config's model and recipe."""
    arch, opt = cfg["Arch"], cfg["Optimizer"]
    out = ["--model", arch["name"], "--batch", str(cfg["DataLoader"]["Train"]["batch_size"]),
           "--lr", str(opt["lr"]["learning_rate"]), "--momentum", str(opt["momentum"]),
           "--weight-decay", str(opt["weight_decay"]), "--label-smoothing", str(cfg["Loss"]["label_smoothing"])]
    if arch.get("widths"):
        out += ["--widths"] + [str(w) for w in arch["widths"]]
    options = {"dyrelu_init": "--dyrelu-init", "reduction": "--reduction", "dyrelu_gate": "--dyrelu-gate"}
    for key in sorted(set(arch) - {"name", "num_classes", "widths"}):
        if key not in options:
            raise SystemExit("error: reference/torch_reference.py has no option for Arch.%s" % key)
        out += [options[key], str(arch[key])]
    return out


if __name__ == "__main__":
    main()
