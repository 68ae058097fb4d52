#!/usr/bin/env python
"""Throughput of ppresvar models on this machine, against plain PyTorch.

Model only (the default): for each model, trainable parameters, FLOPs,
training images/s (forward, loss, backward, optimizer step; median of timed
steps after warm-up, data excluded) under each Paddle setting (paddle's
defaults, ppresvar with paddle's kernels, ppresvar with the oneDNN kernels,
data parallel), eager inference, the exported model on Paddle Inference with
oneDNN on and off and on onnxruntime; separately the input pipeline's
images/s. With --torch-python, the same nets written plainly in PyTorch
(reference/torch_reference.py) in the same run. Every figure comes with the
threads it ran with.

End to end (--end-to-end): one real epoch of ``tools/train.py -c
configs/resnet20.yaml`` as a user types it (as configured, with ``-o
Global.cpu_kernels=paddle``, under ``paddle.distributed.launch`` with 2
processes, and with ``-o Global.cpu_processes=2``), timed whole and from its
metrics.jsonl, against one epoch of a plain PyTorch loop on the same archive.

Writes a markdown table and JSON. Run it on a quiet machine: other processes
make timings meaningless.

    python benchmarks/benchmark.py --torch-python <venv with torch>/bin/python \\
        --markdown docs/benchmarks.md --json docs/benchmarks.json
    python benchmarks/benchmark.py --end-to-end --data cifar-10-python.tar.gz --e2e-runs 3 \\
        --torch-python <venv with torch>/bin/python --markdown docs/benchmarks.md --json docs/benchmarks.json
    python benchmarks/benchmark.py --models resnet20 --steps 3 --warmup 1 --batch 8      (smoke test)
    python benchmarks/benchmark.py --end-to-end --e2e-images 256 --e2e-batch 32          (smoke test)
"""
import argparse
import json
import os
import sys
import warnings

# The user's environment, before ``import paddle`` (via ppresvar) changes this
# process's (it sets OMP_NUM_THREADS=1): the workers start from this one.
_USER_ENV = dict(os.environ)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")

if "--worker" in sys.argv and "--paddle-defaults" in sys.argv:
    # Measure paddle as it comes: load it and start MKL and OpenMP with
    # none of ppresvar's CPU settings (see benchmarks/bench.py).
    import paddle  # noqa: F401
    a = paddle.randn([64, 64])
    paddle.matmul(a, a)
    paddle.nn.functional.conv2d(paddle.randn([1, 3, 8, 8]), paddle.randn([4, 3, 3, 3]))
else:
    from ppresvar import runtime

    runtime.apply_cpu_settings()  # what tools/train.py applies, before paddle loads

from ppresvar.engine.cli import run_tool  # noqa: E402


def main(argv=None):
    from benchmarks import bench

    p = argparse.ArgumentParser(description="Training, inference and input-pipeline images/s.")
    p.add_argument("--models", default=",".join(bench.DEFAULT_MODELS).replace(",rir18:", ";rir18:"),
                   help="models separated by ';' or ',', options after ':' (e.g. 'resnet20;rir18:fused=false')")
    p.add_argument("--batch", type=int, default=128, help="training batch (global) and input-pipeline batch")
    p.add_argument("--infer-batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop timing a measurement after this long (at least 3 steps)")
    p.add_argument("--settings", default=",".join(bench.DEFAULT_SETTINGS),
                   help="Paddle training settings: %s (see benchmarks/bench.py)" % ", ".join(bench.SETTINGS))
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
    e = p.add_argument_group("end to end: one epoch of tools/train.py -c %s against a PyTorch loop"
                             % bench.E2E_CONFIG)
    e.add_argument("--end-to-end", action="store_true", help="run this instead of the model-only benchmark")
    e.add_argument("--data", default=None, metavar="ARCHIVE",
                   help="a CIFAR-10 python-version archive (default: one generated with --e2e-images images)")
    e.add_argument("--e2e-images", type=int, default=10000, help="training images of the generated archive")
    e.add_argument("--e2e-runs", type=int, default=1, help="runs of each side (median, min, max reported)")
    e.add_argument("--e2e-settings", default=",".join(bench.DEFAULT_E2E_SETTINGS),
                   help="ppresvar variants: %s" % ", ".join(bench.E2E_SETTINGS))
    e.add_argument("--e2e-nproc", type=int, default=2, help="processes of the data-parallel variant")
    e.add_argument("--e2e-batch", type=int, default=None,
                   help="global training batch (default: the config's; data parallel splits it)")
    e.add_argument("--e2e-timeout", type=float, default=7200, help="seconds allowed to one run")
    p.add_argument("--markdown", default=None, metavar="FILE",
                   help="write the tables here (between the file's markers; --end-to-end has its own)")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="write every figure here (--end-to-end: under the key end_to_end, the rest kept)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--paddle-defaults", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    args = p.parse_args(argv)

    if args.worker:
        return bench.run_worker(json.loads(args.worker))
    bench.USER_ENV = _USER_ENV
    command = bench.public_command(sys.argv[1:] if argv is None else argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    def go_e2e():
        res = bench.end_to_end(data=args.data, images=args.e2e_images, torch_python=args.torch_python,
                               runs=args.e2e_runs, settings=[s for s in args.e2e_settings.split(",") if s],
                               nproc=args.e2e_nproc, batch=args.e2e_batch, log=log, timeout=args.e2e_timeout)
        res["command"] = command
        res = bench.public(res, args.torch_python)
        text = bench.to_markdown_e2e(res, command)
        print(text)
        print(bench.RESULT_TAG + json.dumps(res, sort_keys=True), flush=True)
        if args.markdown:
            bench.write_markdown(args.markdown, text, bench.E2E_BEGIN, bench.E2E_END)
        if args.json:
            bench.write_json(args.json, res, "end_to_end")
        return res

    if args.end_to_end:
        return run_tool(go_e2e, args.debug)

    def go():
        models = [m for m in args.models.replace(";", "\n").replace(",", "\n").splitlines() if m.strip()]
        models = _rejoin_options(models)
        res = bench.benchmark(models, batch=args.batch, infer_batch=args.infer_batch, steps=args.steps,
                              warmup=args.warmup, max_seconds=args.max_seconds,
                              settings=[s for s in args.settings.split(",") if s],
                              pipeline_workers=[int(w) for w in args.pipeline_workers.split(",") if w],
                              pipeline_images=args.pipeline_images, torch_python=args.torch_python,
                              no_compile=args.no_compile, log=log,
                              baseline_models=None if args.baseline_models == "all" else
                              _rejoin_options([m for m in args.baseline_models.replace(";", ",").split(",") if m]),
                              extra_env=_env_pairs(args.extra_env),
                              parts=[x for x in args.parts.split(",") if x])
        res["command"] = command
        res = bench.public(res, args.torch_python)
        text = bench.to_markdown(res, command)
        print(text)
        if args.markdown:
            bench.write_markdown(args.markdown, text)
        if args.json:
            bench.write_json(args.json, res)
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
