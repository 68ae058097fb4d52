#!/usr/bin/env python
"""Train a model from a YAML config.

    python tools/train.py -c configs/resnet20.yaml [-o Global.epochs=2 ...]
    python tools/train.py --resume output/resnet20/checkpoints/last.pdckpt [-c FILE] [-o ...]

On a CPU it runs as one data-parallel process per core (Global.cpu_processes,
see ppresvar/engine/launch.py; -o Global.cpu_processes=1 for one process).
Data parallel: python -m paddle.distributed.launch --nproc_per_node=N tools/train.py -c FILE
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")
import ppresvar  # noqa: E402,F401  (first: sets CPU defaults before paddle loads)
from ppresvar.engine.cli import base_parser, load_config_from_args, run_tool  # noqa: E402


def main(argv=None):
    p = base_parser("Train a model from a YAML config.", config_required=False)
    p.add_argument("--resume", metavar="PATH",
                   help="continue from a checkpoint (or a run directory: its checkpoints/last.pdckpt); "
                        "without -c the config stored in the checkpoint is used")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)

    def go():
        from ppresvar.engine import launch
        from ppresvar.engine.checkpoint import load_checkpoint
        from ppresvar.engine.trainer import device_of, resolve_resume_path, train

        state = load_checkpoint(resolve_resume_path(args.resume)) if args.resume else None
        cfg = load_config_from_args(args, state)
        processes = launch.processes_for(cfg, device_of(cfg))
        if processes > 1:
            sys.exit(launch.relaunch(processes, os.path.abspath(__file__), argv))
        name = os.path.splitext(os.path.basename(args.config))[0] if args.config else None
        return train(cfg, resume=args.resume, config_name=name, resume_state=state)

    return run_tool(go, args.debug)


if __name__ == "__main__":
    main()
