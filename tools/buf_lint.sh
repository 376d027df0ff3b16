#!/usr/bin/env bash
# buf lint (STANDARD rules, buf.yaml) on protos/. Uses the npm package @bufbuild/buf
# (the PyPI package named "buf" is unrelated). Skips with a notice if it cannot be fetched.
set -uo pipefail
cd "$(dirname "$0")/.."
BUF="npx --yes @bufbuild/buf@1.75.0"
if ! command -v npx >/dev/null 2>&1 || ! timeout 180 $BUF --version >/dev/null 2>&1; then
  echo "buf lint skipped: npx or @bufbuild/buf unavailable" >&2
  exit 0
fi
timeout 120 $BUF lint && echo "buf lint: clean"
