#!/usr/bin/env bash
# Issue 5 proof: schemathesis (from PyPI) against openapi.yaml and a live node on 127.0.0.1.
# Starts one node (single-producer dev chain, producing), waits until it is ready, runs every
# schemathesis check on every operation (schemathesis.toml), stops the node. Fails on any
# schemathesis failure. Logs: target/api-contract/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$ROOT/target/api-contract"
SCHEMATHESIS_VERSION="4.32.5"

if ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q --bin qnet-node
BIN="$CARGO_TARGET_DIR/debug/qnet-node"

rm -rf "$WORK"
mkdir -p "$WORK"
# Three free consecutive ports on 127.0.0.1: p2p (gossip+data plane), bridge gossip, API.
BASE="$("$ROOT/scripts/free-ports.py" 3)"
API="127.0.0.1:$((BASE + 2))"

"$BIN" --node-type super --region eu --enable-microblocks --data-dir "$WORK/node" \
  --p2p-addr "127.0.0.1:$BASE" --rpc-addr "$API" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
cleanup() {
  kill -TERM "$NODE_PID" 2>/dev/null || true
  wait "$NODE_PID" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 120); do
  curl -fsS "http://$API/health/ready" >/dev/null 2>&1 && break
  kill -0 "$NODE_PID" 2>/dev/null || { echo "node exited; see $WORK/node.log"; tail -20 "$WORK/node.log"; exit 1; }
  sleep 0.5
done
curl -fsS "http://$API/health/ready" >/dev/null || { echo "node not ready after 60 s"; exit 1; }
# A few blocks, so that block routes have something to find.
sleep 3

schemathesis run openapi.yaml --url "http://$API" --checks all \
  --report junit --report-dir "$WORK/report" 2>&1 | tee "$WORK/schemathesis.log"
status=${PIPESTATUS[0]}
if ! kill -0 "$NODE_PID" 2>/dev/null; then
  echo "FAIL: the node died under schemathesis; see $WORK/node.log"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "FAIL: schemathesis found failures (log: $WORK/schemathesis.log)"
  exit "$status"
fi
echo "api contract: schemathesis passed against a live node"
