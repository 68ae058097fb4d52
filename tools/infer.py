#!/usr/bin/env python
"""Classify images with an exported model (tools/export.py), batched, with
the evaluation preprocessing saved beside it.

    python tools/infer.py --model export/resnet20 cat.png dogs/ [--topk 5]
    python tools/infer.py --model export/resnet20 imgs/ --backend onnx          (onnxruntime)
    python tools/infer.py --model export/resnet20 imgs/ --backend paddle --onednn off --threads 1
    python tools/infer.py --model export/resnet20 imgs/ --device gpu [--tensorrt]
    python tools/infer.py --model export/resnet20 imgs/ --backend eager   (model.safetensors, no program)

Prints one line per image (``file: label prob, ...``), or JSON lines with --json.
"""
import argparse
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")
from ppresvar import runtime  # noqa: E402  (the standard library only: paddle is not loaded yet)

runtime.apply_cpu_settings()  # before paddle loads (docs/training.md, "CPU settings")
from ppresvar.engine.cli import run_tool  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description="Top-k labels and probabilities for image files or folders.")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--model", required=True, metavar="DIR", help="export directory of tools/export.py")
    p.add_argument("--backend", choices=["auto", "paddle", "onnx", "eager"], default="auto",
                   help="paddle: Paddle Inference; onnx: onnxruntime on inference.onnx; eager: the model "
                        "rebuilt in paddle with the export's model.safetensors (no program, no pickle: for "
                        "shared weights); auto (default): onnx where the export has it and onnxruntime is "
                        "installed (CPU), else paddle")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--onednn", choices=["on", "off"], default="on", help="oneDNN kernels on CPU (paddle backend)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    p.add_argument("--tensorrt", action="store_true", help="TensorRT subgraphs (GPU, paddle built with TensorRT)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="TensorRT precision")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    args = p.parse_args(argv)

    def go():
        from ppresvar import export as E

        backend = E.resolve_backend(args.model, args.backend, args.device, args.tensorrt)
        kw = {"device": args.device, "threads": args.threads}
        if backend == "paddle":
            kw.update(onednn=args.onednn == "on", tensorrt=args.tensorrt, precision=args.precision,
                      max_batch=args.batch_size)
        predictor = E.create_predictor(args.model, backend=backend, **kw)
        sys.stderr.write("backend: %s\n" % predictor.describe())
        results = E.predict_files(args.model, args.images, k=args.topk, batch_size=args.batch_size,
                                  predictor=predictor)
        for r in results:
            if args.json:
                print(json.dumps({"file": r["file"], "top": [{"index": i, "label": label, "prob": prob}
                                                             for i, label, prob in r["top"]]}))
            else:
                print("%s: %s" % (r["file"], ", ".join("%s %.4f" % (label, prob) for _, label, prob in r["top"])))
        return results

    return run_tool(go, args.debug)


if __name__ == "__main__":
    main()
