#!/usr/bin/env python
"""Evaluate weights on the test split (or the held-out validation split).

    python tools/eval.py -c configs/resnet20.yaml -o Global.pretrained_model=output/resnet20/checkpoints/best.pdckpt
    python tools/eval.py -o Global.pretrained_model=PATH --split val     (config from the checkpoint)

Prints a readable line, then the figures as one line of JSON.
"""
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")
from ppresvar import runtime  # noqa: E402  (the standard library only: paddle is not loaded yet)

runtime.apply_cpu_settings()  # before paddle loads (docs/training.md, "CPU settings")
from ppresvar.engine.cli import base_parser, load_config_from_args, run_tool  # noqa: E402


def main(argv=None):
    p = base_parser("Evaluate weights: top-1, top-5 and loss on a data split.", config_required=False)
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="test: DataLoader.Test (default); val: the held-out DataLoader.Eval")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even if the checkpoint has EMA ones")
    args = p.parse_args(argv)

    def go():
        from ppresvar.engine.evaluator import evaluate_config

        cfg = load_config_from_args(args)  # without -c: the config saved in the checkpoint
        r = evaluate_config(cfg, args.split, use_ema=not args.no_ema)
        print("%s on %s (%d images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  [%s%s]" % (
            r["arch"], r["split"], r["samples"], 100 * r["top1"], 100 * r["top5"], r["loss"], r["weights"],
            ", EMA weights" if r["ema"] else ""))
        print(json.dumps(r))
        return r

    return run_tool(go, args.debug)


if __name__ == "__main__":
    main()
