#!/usr/bin/env python
"""Step-by-step parity of a training step, ppresvar against PyTorch: the same
ResNet-20 weights, the same batches, the same SGD recipe, step after step.

    python reference/step_parity.py --torch-python <venv with torch>/bin/python [--steps 1,2,20] [--json FILE]

The PyTorch side (reference/torch_reference.py --step-check) draws the
initial weights and 128-image random batches, trains ``--steps`` steps and
writes all of it; this side loads those weights into ppresvar's model and
trains on the same batches with the optimizer, learning rate schedule and
loss that ``tools/train.py`` builds from ``configs/resnet20.yaml`` (momentum
0.9, weight decay 1e-4 on every parameter, batch norm included, as PyTorch's
SGD), on one process, with the convolutions on the kernels the trainer uses.
It prints each step's two losses, the largest loss difference, and how far
apart the final weights are against how far the steps moved them. Only the
framework differs: what is left is float rounding (the kernels' summation
order), which this recipe amplifies from step to step on random batches
(two PyTorch runs on other thread counts part the same way), so the first
steps are the check: 1 and 2 cover the update, the weight decay on every
parameter and the momentum.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from ppresvar import runtime  # noqa: E402

runtime.apply_cpu_settings()
import numpy as np  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--torch-python", required=True, help="python of a venv with torch")
    p.add_argument("--steps", default="1,2,20", help="comma-separated step counts, each checked from the start")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the figures there (the ledger shows results/parity/step_parity.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kernels", default="auto", choices=("auto", "onednn", "paddle"))
    a = p.parse_args()

    import paddle

    from ppresvar import kernels
    from ppresvar.engine.builder import build_model
    from ppresvar.engine.config import load_config
    from ppresvar.engine.losses import TrainLoss, to_soft_targets
    from ppresvar.engine.optim import build_lr_scheduler, build_optimizer

    cfg = load_config(os.path.join(ROOT, "configs", "resnet20.yaml"))
    paddle.set_device("cpu")
    runtime.set_cpu_threads()
    mode = kernels.resolve(a.kernels, "cpu", say=lambda m: None)
    report = {"command": "python reference/step_parity.py --torch-python <venv with torch>/bin/python --steps %s "
                         "--seed %d --kernels %s" % (a.steps, a.seed, a.kernels),
              "kernels": mode, "seed": a.seed, "checks": []}
    if a.json:
        report["command"] += " --json %s" % os.path.relpath(os.path.abspath(a.json), ROOT)
    for steps in [int(n) for n in a.steps.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            ref = os.path.join(tmp, "steps.npz")
            subprocess.run([a.torch_python, os.path.join(ROOT, "reference", "torch_reference.py"), "--step-check", ref,
                            "--model", "resnet20", "--steps", str(steps), "--seed", str(a.seed), "--batch",
                            str(cfg["DataLoader"]["Train"]["batch_size"]), "--lr",
                            str(cfg["Optimizer"]["lr"]["learning_rate"]), "--momentum",
                            str(cfg["Optimizer"]["momentum"]), "--weight-decay", str(cfg["Optimizer"]["weight_decay"])],
                           check=True, stdout=subprocess.DEVNULL)
            data = dict(np.load(ref))
        model = build_model(cfg)
        model.set_state_dict({k[2:]: paddle.to_tensor(v) for k, v in data.items() if k.startswith("w/")})
        sched = build_lr_scheduler(cfg, 352, 64000)
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
        check = {"steps": steps, "loss_diff": max(abs(m - t) for m, t in zip(losses, theirs)),
                 "ppresvar_vs_torch64": apart(final, f64)[0], "torch32_vs_torch64": apart(f32, f64)[0],
                 "ppresvar_vs_torch32": apart(final, f32)[0]}
        report["checks"].append(check)
        print("== %d steps, kernels %s: largest loss difference %.2e" % (steps, mode, check["loss_diff"]))
        print("final weights apart, as a share of what the steps changed the tensor by (the largest):")
        print("  ppresvar float32 vs PyTorch float64: %.2e (%s)" % apart(final, f64))
        print("  PyTorch float32 vs PyTorch float64:  %.2e (%s)   <- float32 rounding alone" % apart(f32, f64))
        print("  ppresvar float32 vs PyTorch float32: %.2e (%s)" % apart(final, f32))
    if a.json:
        from reproduction.runner import machine

        report.update(paddle=paddle.__version__, machine=machine())
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
        print("wrote %s" % a.json)
    return report


if __name__ == "__main__":
    main()
