#!/usr/bin/env bash
# No two sibling modules of any workspace crate import each other: the cycle finder's own
# tests, then the finder on the workspace (it lists each cycle and the lines that make it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! out=$(python3 scripts/layers_test.py 2>&1); then
  printf '%s\n' "$out"
  echo "layers: the cycle finder's own tests fail (scripts/layers_test.py)"
  exit 1
fi
python3 scripts/layers.py
