#!/usr/bin/env bash
# The package as a user installs it: a wheel (pip install ., not editable) in a
# fresh venv, used from outside the checkout: import it, list the models, train
# the demo config for one epoch with the command-line tools, export the model
# and predict with the export. CI runs it (.ci/run).
#   bash scripts/wheel_check.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=${1:-$REPO/.venv-wheel}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# paddle from the [cpu] extra, scikit-learn (the demo's digits) from [demo]
"$VENV/bin/python" -m pip install -q "$REPO[cpu,demo]"
PY="$VENV/bin/python"
cd "$WORK"   # outside the checkout: nothing but the installed wheel can be imported
"$PY" - <<'PY'
import os, sys
import ppresvar
where = os.path.dirname(ppresvar.__file__)
assert "site-packages" in where, where
for repo_only in ("bench.py", "reproduce.py", "ledger.py", "notebook.py"):
    assert not os.path.exists(os.path.join(where, repo_only)), repo_only
names = ppresvar.list_models()
assert "resnet20" in names and "rir18" in names and len(names) > 20, names
print("installed ppresvar %s from %s: %d models" % (ppresvar.__version__, where, len(names)))
PY
# the command-line tools, copied away from the checkout so that they import the wheel
cp -r "$REPO/tools" "$WORK/tools"
"$PY" tools/train.py -c "$REPO/configs/demo_digits.yaml" -o Global.epochs=1 -o Optimizer.lr.warmup=0 \
    -o Global.output_dir="$WORK/out" \
    -o Global.run_name=demo
"$PY" tools/export.py -c "$REPO/configs/demo_digits.yaml" \
    -o Global.pretrained_model="$WORK/out/demo/checkpoints/last.pdckpt" -o Global.output_dir="$WORK/out" \
    --output "$WORK/export"
ls "$WORK/export"
"$PY" - "$WORK/export" <<'PY'
import sys
import numpy as np
from ppresvar.export import create_predictor, load_meta
meta = load_meta(sys.argv[1])
x = np.random.RandomState(0).rand(2, meta["channels"], *meta["size"]).astype("float32")
logits = create_predictor(sys.argv[1], backend="paddle")(x)
assert logits.shape == (2, 10) and np.isfinite(logits).all()
print("the wheel's export serves: logits", logits.shape)
PY
echo "wheel check passed"
