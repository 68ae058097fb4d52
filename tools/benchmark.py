#!/usr/bin/env python
"""Throughput of ppresvar models on this machine, against plain PyTorch.

For each model: trainable parameters, FLOPs, training images/s (forward,
loss, backward, optimizer step; median of timed steps after warm-up, data
excluded) under each Paddle setting, eager inference, the exported model on
Paddle Inference with oneDNN on and off and on onnxruntime; separately the
input pipeline's images/s. With --torch-python, the same nets written plainly
in PyTorch (scripts/torch_reference.py) in the same run. Writes a markdown
table and JSON. Run it on a quiet machine: other processes make timings
meaningless.

    python tools/benchmark.py --torch-python /work/venvs/torch/bin/python \\
        --markdown docs/benchmarks.md --json docs/benchmarks.json
    python tools/benchmark.py --models resnet20 --steps 3 --warmup 1 --batch 8      (smoke test)
"""
import argparse
import json
import os
import shlex
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")

if "--worker" in sys.argv and "--paddle-defaults" in sys.argv:
    # Measure paddle as it comes: load it and start MKL and OpenMP before
    # ``import ppresvar`` sets its CPU defaults (see ppresvar.bench).
    import paddle  # noqa: F401
    a = paddle.randn([64, 64])
    paddle.matmul(a, a)
    paddle.nn.functional.conv2d(paddle.randn([1, 3, 8, 8]), paddle.randn([4, 3, 3, 3]))

import ppresvar  # noqa: E402,F401  (sets CPU defaults before paddle loads)
from ppresvar.engine.cli import run_tool  # noqa: E402


def main(argv=None):
    from ppresvar import bench

    p = argparse.ArgumentParser(description="Training, inference and input-pipeline images/s.")
    p.add_argument("--models", default=",".join(bench.DEFAULT_MODELS).replace(",rir18:", ";rir18:"),
                   help="models separated by ';' or ',', options after ':' (e.g. 'resnet20;rir18:fused=false')")
    p.add_argument("--batch", type=int, default=128, help="training batch (global) and input-pipeline batch")
    p.add_argument("--infer-batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop timing a measurement after this long (at least 3 steps)")
    p.add_argument("--settings", default="defaults,ppresvar,dp",
                   help="Paddle training settings: defaults, ppresvar, dp (see ppresvar/bench.py)")
    p.add_argument("--parts", default="train,infer,pipeline",
                   help="what to measure on the Paddle side (a quick sweep of a setting: --parts train)")
    p.add_argument("--baseline-models", default="resnet20",
                   help="models measured with the 'defaults' setting too ('all' for every model)")
    p.add_argument("--extra-env", action="append", default=[], metavar="KEY=VALUE",
                   help="added to the environment of the ppresvar workers, to try a setting (repeatable)")
    p.add_argument("--pipeline-workers", default="0,2", help="DataLoader workers to measure the input pipeline with")
    p.add_argument("--pipeline-images", type=int, default=4096)
    p.add_argument("--torch-python", default=None,
                   help="python of a venv with torch, for the PyTorch reference (never a ppresvar dependency)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write the tables here")
    p.add_argument("--json", default=None, metavar="FILE", help="write every figure here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--paddle-defaults", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    args = p.parse_args(argv)

    if args.worker:
        return bench.run_worker(json.loads(args.worker))

    def go():
        models = [m for m in args.models.replace(";", "\n").replace(",", "\n").splitlines() if m.strip()]
        models = _rejoin_options(models)
        res = bench.benchmark(models, batch=args.batch, infer_batch=args.infer_batch, steps=args.steps,
                              warmup=args.warmup, max_seconds=args.max_seconds,
                              settings=[s for s in args.settings.split(",") if s],
                              pipeline_workers=[int(w) for w in args.pipeline_workers.split(",") if w],
                              pipeline_images=args.pipeline_images, torch_python=args.torch_python,
                              no_compile=args.no_compile, log=lambda s: print(s, file=sys.stderr, flush=True),
                              baseline_models=None if args.baseline_models == "all" else
                              _rejoin_options([m for m in args.baseline_models.replace(";", ",").split(",") if m]),
                              extra_env=_env_pairs(args.extra_env),
                              parts=[x for x in args.parts.split(",") if x])
        command = "python tools/benchmark.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        res["command"] = command
        text = bench.to_markdown(res, command)
        print(text)
        if args.markdown:
            bench.write_markdown(args.markdown, text)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(res, f, indent=1, sort_keys=True)
        return res

    return run_tool(go, args.debug)


def _env_pairs(items):
    from ppresvar.errors import ConfigError

    env = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError("--extra-env takes KEY=VALUE, got %r" % item)
        env[key] = value
    return env


def _rejoin_options(items):
    """'rir18:fused=false' 'wiring=seed' (split on ',') -> one spec again."""
    out = []
    for item in items:
        item = item.strip()
        if out and "=" in item and ":" not in item:
            out[-1] += "," + item
        else:
            out.append(item)
    return out


if __name__ == "__main__":
    main()
