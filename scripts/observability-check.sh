#!/usr/bin/env bash
# The dashboards and alert rules against a real Prometheus: starts a devnet (8 nodes,
# 4 regions) on free 127.0.0.1 ports with `qnet-node devnet --prometheus`, a Prometheus
# scraping it every 1 s, then checks that every PromQL expression of every dashboard panel and every alert rule
# evaluates and names only metrics that exist, that the metrics catalogue matches the live
# /metrics and passes `promtool check metrics`, and drives a failover (SIGKILL every node of
# two regions) until `qnet_failover_active` is 1 on a surviving node and QnetFailoverActive
# fires. Also promtool check/test rules, check config, the dashboards' JSON test and the
# cargo tests of the generated config and of the catalogue.
#
# usage: scripts/observability-check.sh [--update-catalogue]
# Needs: cargo, python3, curl; installs Debian's prometheus when missing (run as root in CI).
# Work files and logs: target/observability-check/. Last line: "N passed, M failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$ROOT/target/observability-check"
BIN="$CARGO_TARGET_DIR/debug/qnet-node"
NODES=8
REGIONS=4
KILLED_REGIONS="asia sa"
UPDATE_CATALOGUE=0
[[ "${1:-}" == "--update-catalogue" ]] && UPDATE_CATALOGUE=1

PASSED=0
FAILED=0
DEVNET_PID=""
PROM_PID=""
NODE_PIDS=()

pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
step() { echo; echo "== $*"; }

stop_pid() {
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  stop_pid "$PROM_PID"
  # The devnet stops its nodes on SIGTERM; the node pids are a fallback if it could not.
  stop_pid "$DEVNET_PID"
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls `cmd` every second until it succeeds or `secs` pass.
wait_until() {
  local secs="$1"; shift
  local end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

# Instant query; prints the result vector as JSON.
promql() {
  curl -sf --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]["result"]))'
}

# True when the instant query returns at least one series.
promql_any() { [[ "$(promql "$1")" != "[]" ]]; }

# First free base port for $NODES nodes (3 TCP+UDP ports each), and one free TCP port.
free_ports() { "$ROOT/scripts/free-ports.py" "$1"; }

node_api() { echo "127.0.0.1:$((BASE + 3 * $1 + 2))"; }

step "prerequisites"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "installing Debian's prometheus"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
fi
prometheus --version 2>&1 | head -1

step "static checks"
if promtool check rules "$ROOT/dashboards/alerts.yml"; then pass "promtool check rules"; else fail "promtool check rules"; fi
if promtool test rules "$ROOT/dashboards/alerts_test.yml"; then pass "promtool test rules"; else fail "promtool test rules"; fi
if python3 "$ROOT/dashboards/test_dashboards.py"; then pass "dashboards JSON structure test"; else fail "dashboards JSON structure test"; fi
if promtool check config "$ROOT/dashboards/prometheus.yml"; then pass "promtool check config dashboards/prometheus.yml"; else fail "promtool check config dashboards/prometheus.yml"; fi

step "build and unit tests"
(cd "$ROOT" && cargo build --quiet --bin qnet-node)
if (cd "$ROOT" && cargo test --quiet -p qnet-node --lib devnet:: 2>&1 | tail -3); then
  pass "unit tests of the generated Prometheus config (cargo test --lib devnet::)"
else
  fail "unit tests of the generated Prometheus config"
fi
if (cd "$ROOT" && cargo test --quiet --test e2e metrics:: 2>&1 | tail -3); then
  pass "catalogue matches a lone node's /metrics (cargo test --test e2e metrics::)"
else
  fail "catalogue test against a lone node (cargo test --test e2e metrics::)"
fi
rm -rf "$WORK"
mkdir -p "$WORK"

step "devnet: $NODES nodes in $REGIONS regions"
BASE="$(free_ports $((3 * NODES)))"
PROM_PORT="$(free_ports 1)"
PROM="http://127.0.0.1:$PROM_PORT"
PROM_CONFIG="$WORK/prometheus/prometheus.yml"
"$BIN" devnet --nodes "$NODES" --regions "$REGIONS" --base-port "$BASE" --dir "$WORK/devnet" \
  --monitor-interval 2s --prometheus "$PROM_CONFIG" >"$WORK/devnet.out" 2>&1 &
DEVNET_PID=$!
ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(node_api "$1")/health/ready")" == 200 ]]; }
all_ready() { for i in $(seq 0 $((NODES - 1))); do ready "$i" || return 1; done; }
if wait_until 90 all_ready; then pass "all $NODES devnet nodes ready"; else fail "devnet nodes not all ready in 90 s (see $WORK/devnet)"; fi
mapfile -t NODE_PIDS < <(pgrep -P "$DEVNET_PID" || true)
cat "$WORK/devnet.out"

if promtool check config "$PROM_CONFIG"; then pass "promtool check config (devnet --prometheus)"; else fail "promtool check config (devnet --prometheus)"; fi
if cmp -s "$ROOT/dashboards/alerts.yml" "$(dirname "$PROM_CONFIG")/qnet-alerts.yml"; then
  pass "devnet --prometheus wrote the current dashboards/alerts.yml"
else
  fail "qnet-alerts.yml written by devnet --prometheus differs from dashboards/alerts.yml"
fi
targets="$(grep -c -- '- targets:' "$PROM_CONFIG" || true)"
if [[ "$targets" == "$NODES" ]]; then pass "config scrapes all $NODES nodes"; else fail "config has $targets targets, want $NODES"; fi

# Traffic, so the API families have series: REST routes, JSON-RPC calls and one error.
for i in $(seq 0 $((NODES - 1))); do
  api="http://$(node_api "$i")"
  curl -s -o /dev/null --max-time 3 "$api/v1/status" || true
  curl -s -o /dev/null --max-time 3 "$api/v1/nosuchroute" || true
  for method in node_status net_regions no_such_method; do
    curl -s -o /dev/null --max-time 3 -H 'content-type: application/json' \
      -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$method\",\"params\":[]}" "$api/" || true
  done
done

step "prometheus on 127.0.0.1:$PROM_PORT"
prometheus --config.file="$PROM_CONFIG" --storage.tsdb.path="$WORK/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
if wait_until 60 curl -sf "$PROM/-/ready"; then pass "prometheus ready"; else fail "prometheus not ready (see $WORK/prometheus.log)"; fi
scraped() { promql_any "count(count_over_time(up{job=\"qnet\"}[1m]) >= 5) == $NODES"; }
if wait_until 90 scraped; then pass "prometheus scraped every node at least 5 times"; else fail "prometheus did not scrape all $NODES nodes 5 times: $(promql 'up')"; fi
health_seen() { promql_any "count(qnet_region_health) >= $((NODES * REGIONS))"; }
if wait_until 60 health_seen; then pass "region health of all regions seen by every node"; else fail "region health incomplete: $(promql 'count by (instance) (qnet_region_health)')"; fi
rules_loaded() { [[ "$(curl -sf "$PROM/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')" -gt 0 ]]; }
want_rules="$(grep -c -- '- alert:' "$ROOT/dashboards/alerts.yml")"
if wait_until 30 rules_loaded; then
  got_rules="$(curl -sf "$PROM/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')"
  if [[ "$got_rules" == "$want_rules" ]]; then pass "prometheus loaded all $want_rules alert rules"; else fail "prometheus loaded $got_rules alert rules, want $want_rules"; fi
else
  fail "prometheus loaded no alert rules"
fi

step "every dashboard and alert expression against the live data"
python3 "$ROOT/scripts/promql-check.py" "$PROM" "$ROOT"/dashboards/*.json >"$WORK/promql.txt" || true
cat "$WORK/promql.txt"
PASSED=$((PASSED + $(grep -c '^PASS' "$WORK/promql.txt" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL' "$WORK/promql.txt" || true)))

step "metrics catalogue and promtool check metrics on a live scrape"
curl -sf --max-time 5 "http://$(node_api 0)/metrics" >"$WORK/metrics.txt"
if lint="$(promtool check metrics <"$WORK/metrics.txt" 2>&1)"; then
  pass "promtool check metrics on node-0's /metrics ($(grep -c '^# TYPE' "$WORK/metrics.txt") families)"
else
  fail "promtool check metrics: $lint"
fi
if ((UPDATE_CATALOGUE)); then
  python3 "$ROOT/scripts/metrics-catalogue.py" "$WORK/metrics.txt" --write "$ROOT/README-metrics.md"
  echo "wrote README-metrics.md"
fi
if python3 "$ROOT/scripts/metrics-catalogue.py" "$WORK/metrics.txt" --check "$ROOT/README-metrics.md"; then
  pass "README-metrics.md matches the live /metrics"
else
  fail "README-metrics.md differs from the live /metrics (scripts/observability-check.sh --update-catalogue)"
fi
for family in process_cpu_seconds_total process_resident_memory_bytes process_open_fds; do
  if grep -q "^| \`$family\`" "$ROOT/README-metrics.md"; then pass "catalogue lists $family"; else fail "catalogue lacks $family"; fi
done

step "failover drill: SIGKILL every node of regions $KILLED_REGIONS"
# Converged and calm first, so the activation below is caused by the drill.
calm() { promql_any 'max_over_time(qnet_failover_active{instance="node-0"}[5s]) == 0'; }
if wait_until 60 calm; then pass "no failover on node-0 before the drill"; else fail "node-0 already in failover before the drill"; fi
echo "activations before the drill (startup transients): $(promql 'sum(qnet_failover_activations_total)')"
killed=0
for pid in "${NODE_PIDS[@]}"; do
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  for region in $KILLED_REGIONS; do
    if [[ "$cmd" == *"--region $region "* ]]; then
      kill -KILL "$pid" && killed=$((killed + 1))
      echo "killed pid $pid ($region): ${cmd#* --data-dir }" | cut -c1-120
    fi
  done
done
want_killed=$((NODES / REGIONS * 2))
if [[ "$killed" == "$want_killed" ]]; then pass "killed $killed nodes of 2 regions"; else fail "killed $killed nodes, want $want_killed"; fi
if wait_until 120 promql_any 'qnet_failover_active{instance="node-0"} == 1'; then
  pass "qnet_failover_active went to 1 on node-0 (eu): $(promql 'qnet_failover_active == 1')"
else
  fail "qnet_failover_active did not reach 1 on node-0: $(promql 'qnet_failover_active')"
fi
echo "missing regions: $(promql 'qnet_regions_missing{instance=~"node-0|node-1"}')"
echo "activations:     $(promql 'qnet_failover_activations_total{instance=~"node-0|node-1"}')"
if promql_any 'qnet_regions_missing{instance="node-0"} >= 2'; then pass "node-0 sees 2 regions missing"; else fail "node-0 does not see 2 regions missing"; fi
if promql_any 'up{job="qnet"} == 0'; then pass "killed nodes are down to Prometheus: $(promql 'count(up{job="qnet"} == 0)')"; else fail "no target is down"; fi
alert_firing() {
  curl -sf "$PROM/api/v1/alerts" | python3 -c '
import json, sys
alerts = json.load(sys.stdin)["data"]["alerts"]
hits = [a for a in alerts if a["labels"].get("alertname") == "QnetFailoverActive" and a["state"] == "firing"]
print(" ".join(sorted(a["labels"].get("instance", "?") for a in hits)))
sys.exit(0 if hits else 1)'
}
if wait_until 60 alert_firing; then
  pass "alert QnetFailoverActive firing for: $(alert_firing)"
else
  fail "alert QnetFailoverActive not firing: $(curl -sf "$PROM/api/v1/alerts")"
fi

echo
echo "logs: $WORK (devnet.out, devnet/node-*/node.log, prometheus.log, promql.txt)"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
