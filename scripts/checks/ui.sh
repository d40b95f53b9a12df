#!/usr/bin/env bash
# The page at /ui in a real browser: headless Chromium (Debian package) driven by
# playwright-core (scripts/ui/check.mjs, Node 20) against a devnet of 6 nodes in 3 regions.
# Checks that every region and the head height render, the height advances without a reload,
# search finds a block, a region whose nodes are killed shows missing, the page fits 375 px,
# and the browser reports no console error. Screenshots (1,400 px and 375 px), the driver's
# output and the devnet's logs stay under target/ui/.
# Installs chromium with apt when root and missing; skipped with a message otherwise.
# QNET_UI_PROFILE=debug uses the debug binary (quicker to build while working on the page).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/target/ui"
CHROMIUM=/usr/bin/chromium
PROFILE="${QNET_UI_PROFILE:-release}"
NODES=6
REGIONS=3
# the first REGIONS of devnet's regions (src/devnet.rs)
REGION_NAMES=eu,na,asia
STOP_REGION=asia

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing chromium (Debian package) for the ui check"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium fonts-dejavu-core >/dev/null
  else
    echo "ui check skipped: $CHROMIUM is missing and installing it needs root (apt-get install chromium)"
    exit 0
  fi
fi
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  echo "ui check needs Node 20 or later with npm (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

npm ci --prefix scripts/ui --no-audit --no-fund --loglevel=error
if [ "$PROFILE" = release ]; then
  cargo build --release --bin qnet-node
else
  cargo build --bin qnet-node
fi
BIN="$CARGO_TARGET_DIR/$PROFILE/qnet-node"

rm -rf "$OUT"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
DEVNET_PID=""
cleanup() {
  status=$?
  if [ -n "$DEVNET_PID" ]; then
    local children
    children="$(pgrep -P "$DEVNET_PID" || true)"
    kill -TERM "$DEVNET_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$DEVNET_PID" 2>/dev/null || break
      sleep 0.25
    done
    # devnet stops its nodes on SIGTERM; anything left after 15 s is killed
    for pid in $DEVNET_PID $children; do kill -KILL "$pid" 2>/dev/null || true; done
    wait "$DEVNET_PID" 2>/dev/null || true
  fi
  for log in "$WORK"/devnet/node-*/node.log; do
    [ -e "$log" ] && cp "$log" "$OUT/$(basename "$(dirname "$log")").log"
  done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

BASE="$(scripts/free-ports.py $((3 * NODES)))"
API="127.0.0.1:$((BASE + 2))"
"$BIN" devnet --nodes "$NODES" --regions "$REGIONS" --base-port "$BASE" --dir "$WORK/devnet" \
  --monitor-interval 2s >"$OUT/devnet.log" 2>&1 &
DEVNET_PID=$!

all_ready() {
  for i in $(seq 0 $((NODES - 1))); do
    curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$((BASE + 3 * i + 2))/health/ready" || return 1
  done
}
for _ in $(seq 1 120); do
  all_ready && break
  kill -0 "$DEVNET_PID" 2>/dev/null || { echo "FAIL devnet exited; see $OUT/devnet.log"; exit 1; }
  sleep 0.5
done
all_ready || { echo "FAIL devnet nodes not all ready in 60 s; see $OUT/"; exit 1; }
echo "devnet: $NODES nodes ready; page http://$API/ui"
# devnet names the page before anything else to try
first_hint=""
for _ in $(seq 1 40); do
  first_hint="$(grep -m1 -E '^(open|try):' "$OUT/devnet.log" || true)"
  [ -n "$first_hint" ] && break
  sleep 0.25
done
if [ "$first_hint" = "open: http://$API/ui" ]; then
  echo "PASS devnet prints the page's URL first: $first_hint"
else
  echo "FAIL devnet's first hint is not the page's URL: ${first_hint:-none}"
  exit 1
fi

# The nodes of the region to stop: devnet's children started with `--region <it>`.
stop_pids=()
for pid in $(pgrep -P "$DEVNET_PID"); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--region $STOP_REGION "; then
    stop_pids+=("$pid")
  fi
done
want=$((NODES / REGIONS))
[ "${#stop_pids[@]}" = "$want" ] || { echo "FAIL found ${#stop_pids[@]} nodes of $STOP_REGION, want $want"; exit 1; }

timeout 300 node scripts/ui/check.mjs --url "http://$API/ui" --out "$OUT" --regions "$REGION_NAMES" \
  --stop "$STOP_REGION" --pids "$(IFS=,; echo "${stop_pids[*]}")" --chromium "$CHROMIUM" \
  | tee "$OUT/check.log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "FAIL ui check; screenshots and logs in $OUT"
  exit "$status"
fi
echo "ui check passed; screenshots in $OUT"
