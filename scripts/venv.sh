# Sourced by scripts/test.sh and scripts/demo.sh: ensure_venv EXTRAS creates
# .venv once and installs the package with EXTRAS into it. paddle comes from
# the [cpu] extra only when no paddle is installed yet, so that a venv with
# paddlepaddle-gpu keeps its build.
ensure_venv() {
  local extras=$1
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
  fi
  if .venv/bin/python -c "import paddle" 2>/dev/null; then
    .venv/bin/python -m pip install -q -e ".[$extras]"
  else
    .venv/bin/python -m pip install -q -e ".[cpu,$extras]"
  fi
}
