#!/usr/bin/env bash
# One entry point for people and CI.
#   ./dev.sh demo   set up .venv if needed, then run the main job (vattr demo)
#   ./dev.sh test   set up .venv if needed, then ruff, mypy, lint-imports and the tests
#   ./dev.sh bench  set up, then the benchmarks recorded in docs/benchmarks.md
# Set-up installs the CPU build of torch 2.13.0 first (so pip never pulls a CUDA build),
# then the package in editable mode with its extras (VATTR_EXTRAS, default "dev,realdata").
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
EXTRAS=${VATTR_EXTRAS:-dev,realdata}

setup() {
  local stamp=".venv/.vattr-setup-$EXTRAS"
  if [ -x .venv/bin/vattr ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] \
     && [ "$stamp" -nt setup.py ] && [ -z "$(find protos -newer "$stamp" -name '*.proto')" ]; then
    return 0
  fi
  echo "setting up .venv (extras: $EXTRAS) ..." >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >&2
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "torch==2.13.0" >&2
  fi
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]" >&2
  touch "$stamp"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    setup
    exec .venv/bin/vattr demo "$@"
    ;;
  test)
    setup
    .venv/bin/ruff check attribution prover verifier vattr tests benchmarks tools
    .venv/bin/mypy
    .venv/bin/lint-imports
    exec .venv/bin/python -m pytest "$@"
    ;;
  bench)
    setup
    exec .venv/bin/python benchmarks/run_all.py "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./dev.sh demo|test|bench|setup" >&2
    exit 2
    ;;
esac
