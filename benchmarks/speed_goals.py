"""Speed ratios of two project goals, measured as interleaved A/B runs in one
process (A, B, A, B, ...; each figure the median of its timed runs):

1. DyReLU-C: ``resnet18_dyrelu_c`` training step / ``resnet18`` step
   (goal <= 1.3), and one DyReLU-C layer forward+backward / ReLU's on a
   block-sized tensor ``(batch, 64, 32, 32)``.
2. RiR: ``rir18`` training step with ``fused=False`` / with ``fused=True``
   (the fused speed-up; goal >= 1.5).

A training step is forward, cross entropy, backward and a Momentum step
(lr 0.1, momentum 0.9, L2 5e-4) on a fixed random CIFAR-sized batch.
``--kernels`` runs convolutions through paddle's own kernels, through
``ppresvar.kernels`` (oneDNN; built on first use), or both one after the
other. Prints numbers; it checks nothing.

    python benchmarks/speed_goals.py --batch 32 --steps 10 --kernels both
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from ppresvar import runtime  # noqa: E402  (the standard library only)

runtime.apply_cpu_settings()  # what tools/train.py applies, before paddle loads
import ppresvar  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from ppresvar import kernels  # noqa: E402
from ppresvar.layers import DyReLU  # noqa: E402


def interleaved(fns, steps, warmup):
    """Each callable run in turn ``steps`` times after ``warmup`` untimed
    turns; returns the median seconds of each, and the median over turns of
    the second's time over the first's (less sensitive to load drifting
    during the run than the ratio of medians)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(steps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    pair = statistics.median(b / a for a, b in zip(times[0], times[1]))
    return [statistics.median(t) for t in times] + [pair]


def train_step(model, batch, seed=0):
    rng = np.random.RandomState(seed)
    x = paddle.to_tensor(rng.randn(batch, 3, 32, 32).astype("float32"))
    y = paddle.to_tensor(rng.randint(0, 10, (batch,)).astype("int64"))
    opt = paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                                    parameters=model.parameters())
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)

    return step


def layer_step(layer, x0):
    def step():
        x = x0.detach()
        x.stop_gradient = False
        layer(x).sum().backward()
        for p in layer.parameters():
            p.clear_gradient()
        float(x.grad.sum())

    return step


def report(label, goal, a_name, a, b_name, b, pair, setting):
    print("%-34s %.3f  [goal %s]  (median of per-turn ratios %.3f; %s %.4f s, %s %.4f s; %s)"
          % (label, b / a, goal, pair, b_name, b, a_name, a, setting), flush=True)


def run(args, kernel_mode):
    use = kernel_mode == "onednn"
    setting = "batch %d, %d threads, kernels %s, median of %d interleaved steps" % (
        args.batch, args.threads, kernel_mode, args.steps)
    with kernels.use(use):
        if "dyrelu" in args.goals:
            paddle.seed(0)
            relu_model = ppresvar.create_model("resnet18")
            dy_model = ppresvar.create_model("resnet18_dyrelu_c")
            a, b, pair = interleaved([train_step(relu_model, args.batch), train_step(dy_model, args.batch)],
                                     args.steps, args.warmup)
            report("resnet18_dyrelu_c / resnet18 step", "<= 1.3", "resnet18", a, "dyrelu_c", b, pair, setting)
            del relu_model, dy_model
        if "layer" in args.goals:
            x0 = paddle.randn([args.batch, 64, 32, 32])
            a, b, pair = interleaved([layer_step(nn.ReLU(), x0), layer_step(DyReLU(64, mode="C"), x0)],
                                     args.steps, args.warmup)
            report("DyReLU-C / ReLU layer fwd+bwd", "none", "relu", a, "dyrelu_c", b, pair,
                   setting.replace("batch %d" % args.batch, "x (%d, 64, 32, 32)" % args.batch))
        if "rir" in args.goals:
            paddle.seed(0)
            fused = ppresvar.create_model("rir18")
            plain = ppresvar.create_model("rir18", fused=False)
            a, b, pair = interleaved([train_step(fused, args.batch), train_step(plain, args.batch)],
                                     args.steps, args.warmup)
            report("rir18 four-conv / fused step", ">= 1.5", "fused", a, "four-conv", b, pair, setting)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps of each side")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--kernels", choices=["paddle", "onednn", "both"], default="both")
    p.add_argument("--goals", default="dyrelu,layer,rir",
                   help="comma-separated subset of dyrelu (whole model), layer, rir")
    args = p.parse_args(argv)
    args.goals = set(args.goals.split(","))
    unknown = args.goals - {"dyrelu", "layer", "rir"}
    if unknown:
        p.error("unknown goals: %s" % ", ".join(sorted(unknown)))
    runtime.set_cpu_threads(args.threads)
    modes = ["paddle", "onednn"] if args.kernels == "both" else [args.kernels]
    if "onednn" in modes:
        ok, why = kernels.available()
        if not ok:
            print("oneDNN kernels unavailable: %s" % why)
            modes.remove("onednn")
    print("ratios of median step times (glibc malloc %s)"
          % ("as it comes: PPRESVAR_NO_MALLOPT" if os.environ.get("PPRESVAR_NO_MALLOPT")
             else "tuned by ppresvar.runtime"))
    for mode in modes:
        run(args, mode)


if __name__ == "__main__":
    main()
