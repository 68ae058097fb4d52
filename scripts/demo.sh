#!/usr/bin/env bash
# The quick-start demo on a fresh machine: sets up .venv (once; the same one as
# scripts/test.sh), trains ResNet-20 on scikit-learn's handwritten digits (real
# data that ships inside the scikit-learn wheel, so no download) and evaluates
# the best checkpoint on the test split (README.md says how long it takes).
#   bash scripts/demo.sh [-o Global.epochs=3 ...]   (extra arguments go to tools/train.py)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv demo
RUN="demo_digits-$(date +%Y%m%d-%H%M%S)"
.venv/bin/python tools/train.py -c configs/demo_digits.yaml -o Global.run_name="$RUN" "$@"
# the config is read back from the checkpoint, so overrides given above carry over
exec .venv/bin/python tools/eval.py -o Global.pretrained_model="output/$RUN/checkpoints/best.pdckpt"
