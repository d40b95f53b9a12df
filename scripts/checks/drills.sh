#!/usr/bin/env bash
# Fault drills (DESIGN §11): a 12-node cluster in 4 regions, one network namespace per
# node, built from the release binary; region cut-offs, kill -9 and rolling restarts.
# Needs root (ip netns); skipped with a message otherwise. Logs of every node and the API
# answers stay under target/drills/<run>/ (result.json holds the figures).
# Options pass through to scripts/drills/drills.py, e.g. `--drills 1,3` or `--kills 5`.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
  echo "drills skipped: they need root for ip netns (run: sudo $0)"
  exit 0
fi
for tool in ip python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "drills need $tool (apt-get install iproute2 python3)" >&2; exit 1; }
done
probe="qdrill-probe-$$"
if ! ip netns add "$probe" 2>/dev/null; then
  echo "drills cannot create a network namespace here (ip netns add failed: no CAP_SYS_ADMIN?)" >&2
  exit 1
fi
ip netns del "$probe"

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin qnet-node
exec python3 scripts/drills/drills.py --binary "$target/release/qnet-node" --out "${DRILLS_OUT:-target/drills}" "$@"
