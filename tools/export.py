#!/usr/bin/env python
"""Export trained weights for deployment: a Paddle inference model
(``inference.json`` on Paddle 3.x, ``inference.pdmodel`` on 2.x, with
``inference.pdiparams``), the eval preprocessing (``preprocess.json``), the
weights as ``model.safetensors`` and, with ``--onnx``, ``inference.onnx``.

    python tools/export.py -c configs/resnet20.yaml -o Global.pretrained_model=output/resnet20/checkpoints/best.pdckpt --output export/resnet20 [--onnx]

Then: python tools/infer.py --model export/resnet20 IMAGES_OR_FOLDERS
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")
from ppresvar import runtime  # noqa: E402  (the standard library only: paddle is not loaded yet)

runtime.apply_cpu_settings()  # before paddle loads (docs/training.md, "CPU settings")
from ppresvar.engine.cli import base_parser, load_config_from_args, run_tool  # noqa: E402


def main(argv=None):
    p = base_parser("Export weights to a Paddle inference model (+ safetensors, optional ONNX).",
                    config_required=False)
    p.add_argument("--output", required=True, metavar="DIR", help="export directory (created)")
    p.add_argument("--onnx", action="store_true",
                   help="also write inference.onnx (needs paddle2onnx; pip install ppresvar[onnx])")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing the exported runtimes with eager on a random batch")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights even if the checkpoint has EMA ones")
    args = p.parse_args(argv)

    def go():
        from ppresvar import export as E
        from ppresvar.engine.runlock import FolderLock

        cfg = load_config_from_args(args)  # without -c: the config saved in the checkpoint
        # one writer per export folder: a second export into it is refused with one line
        with FolderLock(args.output, "export folder", "wait for that export to end"):
            paths, parity = E.export_from_config(cfg, args.output, onnx=args.onnx, check=not args.no_check,
                                                 use_ema=not args.no_ema)
        print("exported %s to %s" % (cfg["Arch"]["name"], args.output))
        for key in ("program", "params", "preprocess", "safetensors", "onnx"):
            if paths.get(key):
                print("  %-11s %s" % (key, paths[key]))
        bad = []
        for name, (diff, same, ok) in parity.items():
            print("  check %-9s max |logit - eager| %.2e, same top-1: %s" % (name, diff, "yes" if same else "NO"))
            if not ok:
                bad.append(name)
        if bad:
            raise E.ExportError("the exported model disagrees with eager (%s); rerun with --debug and "
                                "report it" % ", ".join(bad))
        return paths

    return run_tool(go, args.debug)


if __name__ == "__main__":
    main()
