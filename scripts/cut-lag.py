#!/usr/bin/env python3
"""Who waited for whom when a region was cut (docs/adr/0012).

    scripts/cut-lag.py DIR...

Reads DIR/region_cut_nodes.csv (written by `qnet-sim --parts cuts`) and prints per cut:
when the surviving bridges saw it (p50 / p99 / max, ms after the cut), how long after the
first bridge of its own cell each non-bridge saw it, and how many non-bridges came more than
500 ms after their cell's first bridge.
"""
import csv
import sys
from collections import defaultdict


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0


def main(dirs):
    for d in dirs:
        rows = list(csv.DictReader(open(f"{d}/region_cut_nodes.csv")))
        print(d)
        for cut in sorted({r["cut"] for r in rows}):
            first = defaultdict(lambda: None)
            bridges, others = [], []
            for r in rows:
                if r["cut"] != cut:
                    continue
                cell = (r["region"], r["cell"])
                t = int(r["seen_ms"])
                if r["bridge"] == "true":
                    bridges.append(t)
                    first[cell] = t if first[cell] is None else min(first[cell], t)
                else:
                    others.append((cell, t))
            lags = [t - first[c] for c, t in others if first[c] is not None]
            late = sum(1 for x in lags if x > 500)
            print(
                f"  cut {cut}: bridges p50/p99/max {pct(bridges, .5)}/{pct(bridges, .99)}/"
                f"{max(bridges)} ms; non-bridges after their cell's first bridge p50/p90/p99/max "
                f"{pct(lags, .5)}/{pct(lags, .9)}/{pct(lags, .99)}/{max(lags)} ms, "
                f"{late} of {len(lags)} over 500 ms; everyone max {max(bridges + [t for _, t in others])} ms"
            )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
