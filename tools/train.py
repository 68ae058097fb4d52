#!/usr/bin/env python
"""Train a model from a YAML config.

    python tools/train.py -c configs/resnet20.yaml [-o Global.epochs=2 ...]
    python tools/train.py --resume output/resnet20/checkpoints/last.pdckpt [-c FILE] [-o ...]
    python tools/train.py -c configs/resnet20.yaml --seeds 3      (seeds S, S+1, S+2; mean and spread)

On a CPU it runs as one process using every core; -o Global.cpu_processes=N
runs N data-parallel processes sharing the batch (ppresvar/engine/launch.py).
Data parallel: python -m paddle.distributed.launch --nproc_per_node=N tools/train.py -c FILE
"""
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")
from ppresvar import runtime  # noqa: E402  (the standard library only: paddle is not loaded yet)

runtime.apply_cpu_settings()  # before paddle loads (docs/training.md, "CPU settings")
from ppresvar.engine.cli import base_parser, load_config_from_args, run_tool  # noqa: E402


def main(argv=None):
    p = base_parser("Train a model from a YAML config.", config_required=False)
    p.add_argument("--resume", metavar="PATH",
                   help="continue from a checkpoint (or a run directory: its checkpoints/last.pdckpt); "
                        "without -c the config stored in the checkpoint is used")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="train N runs with Global.seed S, S+1, ... (S: the config's), named <run name>-seed<k>, "
                        "then print the mean and sample standard deviation of the best validation metric")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)

    def go():
        if args.seeds is not None:
            return train_seeds(args, argv)
        from ppresvar.engine import launch
        from ppresvar.engine.checkpoint import load_checkpoint
        from ppresvar.engine.device import device_of
        from ppresvar.engine.trainer import resolve_resume_path, starts_over, train

        state = None
        if starts_over(args.resume):  # killed before its first checkpoint: its saved config
            args.config = args.config or os.path.join(args.resume, "config.yaml")
        elif args.resume:
            state = load_checkpoint(resolve_resume_path(args.resume))
        cfg = load_config_from_args(args, state)
        processes = launch.processes_for(cfg, device_of(cfg), say=lambda line: print(line, flush=True))
        if processes > 1:
            if args.resume:  # refuse a run directory in use before starting the ranks
                from ppresvar.engine.trainer import lock_run_dir, run_dir_of

                lock_run_dir(run_dir_of(resolve_resume_path(args.resume))).release()
            sys.exit(launch.relaunch(processes, os.path.abspath(__file__), argv))
        name = os.path.splitext(os.path.basename(args.config))[0] if args.config else None
        summary = train(cfg, resume=args.resume, config_name=name, resume_state=state)
        if os.environ.get("PPRESVAR_SUMMARY_FILE") and summary.get("run_dir"):
            with open(os.environ["PPRESVAR_SUMMARY_FILE"], "w") as f:
                json.dump(summary, f)
        return summary

    return run_tool(go, args.debug)


def without_seeds(argv):
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--seeds":
            skip = True
        elif not a.startswith("--seeds="):
            out.append(a)
    return out


def train_seeds(args, argv):
    """``--seeds N``: one tools/train.py per seed, in turn; a failing seed
    stops the sweep with its exit code (its error already printed)."""
    from ppresvar.engine.cli import load_config_from_args
    from ppresvar.errors import ConfigError

    if args.seeds < 1:
        raise ConfigError("--seeds must be at least 1, got %d" % args.seeds)
    if args.resume:
        raise ConfigError("--seeds starts new runs: resume each seed's run directory with --resume RUN_DIR")
    cfg = load_config_from_args(args)
    base = cfg["Global"]["seed"]
    name = cfg["Global"]["run_name"] or (os.path.splitext(os.path.basename(args.config))[0] if args.config
                                         else "run")
    metric, results = cfg["Metric"]["best"], []
    for k in range(args.seeds):
        seed = base + k
        with tempfile.TemporaryDirectory() as tmp:
            summary_file = os.path.join(tmp, "summary.json")
            cmd = [sys.executable, os.path.abspath(__file__)] + without_seeds(argv) + [
                "-o", "Global.seed=%d" % seed, "-o", "Global.run_name=%s-seed%d" % (name, seed)]
            print("seed %d (%d of %d)" % (seed, k + 1, args.seeds), flush=True)
            code = subprocess.call(cmd, env=dict(os.environ, PPRESVAR_SUMMARY_FILE=summary_file))
            if code != 0:
                sys.exit(code)
            with open(summary_file) as f:
                results.append(dict(json.load(f), seed=seed))
    values = [r["best_metric"] for r in results]
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    scale = 1.0 if metric == "val_loss" else 100.0
    print("%d seeds: best %s mean %.4g, sample std %.2g (%s)" % (
        len(values), metric, scale * mean, scale * std,
        ", ".join("seed %d: %.4g" % (r["seed"], scale * r["best_metric"]) for r in results)))
    summary = {"metric": metric, "mean": mean, "std": None if math.isnan(std) else std, "runs": results}
    path = os.path.join(cfg["Global"]["output_dir"], "%s-seeds.json" % name)
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    print("summary: %s" % path)
    return summary


if __name__ == "__main__":
    main()
