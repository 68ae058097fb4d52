#!/usr/bin/env bash
# Sets up .venv (once) and runs the test suite: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv test
exec .venv/bin/python -m pytest -q "${@:-tests}"
