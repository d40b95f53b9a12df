#!/usr/bin/env bash
# Runs the CI test's simulator configuration (100 nodes, 6 regions) in release over many
# seeds, one and two gossip cells each, and summarises the runs (SIMULATION.md, "How to run").
#
#   scripts/sim-batch.sh OUT FIRST_SEED LAST_SEED [QNET-SIM OPTIONS...]
#
# Options after the seeds replace --ci (e.g. a longer loss phase to compare detectors:
# --nodes 100 --parts loss --settle 2s --failover-interval 2s --loss-phase 60s); --cells,
# --seed and --out are added per run. QNET_SIM=path runs that binary instead of building
# target/release/qnet-sim (a build of another commit, for a side-by-side comparison).
#
# OUT/summary.txt: per run the seed, the cell count, the exit code and the failed checks;
# OUT/stats.txt: per figure the mean p50, the mean max and the largest max (seconds).
# Exits non-zero when a run failed a check. Each run takes a few seconds of one core.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 3 ]; then
  echo "usage: $0 OUT FIRST_SEED LAST_SEED [QNET-SIM OPTIONS...]" >&2
  exit 2
fi
out=$1 first=$2 last=$3
shift 3
case "$first$last" in *[!0-9]*) echo "error: seeds must be numbers" >&2; exit 2 ;; esac
[ "$first" -le "$last" ] || { echo "error: FIRST_SEED must not exceed LAST_SEED" >&2; exit 2; }

# the configuration of sim/tests/sim.rs (SimConfig::ci) unless options were given
if [ $# -gt 0 ]; then ci_args=("$@"); else ci_args=(--ci); fi
total=$(( (last - first + 1) * 2 ))

if [ -n "${QNET_SIM:-}" ]; then
  sim=$QNET_SIM
else
  cargo build --release --quiet -p qnet-sim --bin qnet-sim
  sim=target/release/qnet-sim
fi
export MALLOC_MMAP_THRESHOLD_=32768
mkdir -p "$out/runs"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "${QNET_SIM:-}" ] || commit="binary $QNET_SIM"
{
  echo "# $total release runs, commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC'), seeds $first-$last, cells 1 and 2 each:"
  echo "# qnet-sim ${ci_args[*]} --cells C --seed S"
  echo "# per run: seed, cells, exit code and number of failed checks"
} >"$out/summary.txt"

failed_runs=0
dirs=()
for seed in $(seq "$first" "$last"); do
  for cells in 1 2; do
    dir="$out/runs/$seed-$cells"
    dirs+=("$dir")
    set +e
    "$sim" "${ci_args[@]}" --cells "$cells" --seed "$seed" --out "$dir" \
      >"$dir.log" 2>&1
    code=$?
    set -e
    fails=$(grep -c '^check FAILED' "$dir.log" || true)
    echo "$seed $cells exit $code fails $fails" >>"$out/summary.txt"
    if [ "$code" -ne 0 ] || [ "$fails" -ne 0 ]; then
      failed_runs=$((failed_runs + 1))
    fi
  done
done

# only this batch's runs: OUT/runs may hold runs of an earlier batch
python3 - "$out" "${dirs[@]}" >"$out/stats.txt" <<'EOF'
import csv, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = {}
def add(name, row):
    if row is not None:
        rows.setdefault(name, []).append((int(row["p50_ms"]) / 1000, int(row["max_ms"]) / 1000))

def first(path, prefix=""):
    if not path.exists():
        return None
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["what"].startswith(prefix):
                return row
    return None

runs = [Path(d) for d in sys.argv[2:]]
for run in runs:
    cells = run.name.rsplit("-", 1)[1]
    add(f"cold-cells{cells}", first(run / "cold_start.csv"))
    add("crash", first(run / "crash.csv"))
    add("cut1", first(run / "regions.csv", "1 cut: survivors' view"))
    add("cut2", first(run / "regions.csv", "2 cut: survivors' view"))
print(f"{out} {len(runs)} runs")
for name, v in rows.items():
    n = len(v)
    p50 = sum(p for p, _ in v) / n
    mx = sum(m for _, m in v) / n
    print(f"  {name:<12} n={n:>3} p50 mean {p50:.2f}  max mean {mx:.2f}  max of max {max(m for _, m in v):.2f}")
deaf = []
for run in runs:
    path = run / "deaf_bridge.csv"
    if path.exists():
        with path.open() as f:
            deaf.extend(csv.DictReader(f))
if deaf:
    def span(key):
        # runs of older builds lack some columns
        v = [int(r[key]) for r in deaf if key in r]
        return f"{min(v)}-{max(v)}" if v else "not recorded"
    hit = sum(1 for r in deaf if int(r["missing_pairs"]) > 0)
    print(f"  deaf bridge  n={len(deaf):>3} runs with a region seen missing {hit}; per run: "
          f"detector dead at once {span('detector_dead_max')}, nodes seeing a region missing "
          f"{span('observers')}, regions missing at the deaf bridge "
          f"{span('regions_missing_at_deaf_bridge')}, activations {span('failover_activations')}")
EOF
cat "$out/stats.txt"
echo "$failed_runs of $total runs failed a check"
[ "$failed_runs" -eq 0 ]
