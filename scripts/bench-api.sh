#!/usr/bin/env bash
# API benchmark: starts a release node (single-producer dev chain, 1 s slots) on
# 127.0.0.1:18000-18002, waits for 20 blocks, runs examples/api_bench.rs against it, stops it.
# usage: scripts/bench-api.sh [SECONDS_PER_LOAD]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_LOAD="${1:-10}"
WORK="$ROOT/target/bench-api"
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release --bin qnet-node --example api_bench
target/release/qnet-node --region eu --node-type super --enable-microblocks \
  --data-dir "$WORK/node" --p2p-addr 127.0.0.1:18000 --rpc-addr 127.0.0.1:18001 \
  --api-tx-rate 0 >"$WORK/node.log" 2>&1 &
NODE=$!
trap 'kill -TERM $NODE 2>/dev/null || true; wait $NODE 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  h="$(curl -s -X POST -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"chain_getHead","params":[]}' http://127.0.0.1:18001/ \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["height"])' 2>/dev/null || echo 0)"
  [ "$h" -ge 20 ] && break
  sleep 1
done
target/release/examples/api_bench --url http://127.0.0.1:18001 --seconds "$SECONDS_PER_LOAD"
