#!/usr/bin/env bash
# Sets up .venv (once) and runs the test suite: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# paddle comes from the [cpu] extra only when no paddle is installed yet, so a
# paddlepaddle-gpu venv keeps its build.
if .venv/bin/python -c "import paddle" 2>/dev/null; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e ".[cpu,test]"
fi
exec .venv/bin/python -m pytest -q "${@:-tests}"
