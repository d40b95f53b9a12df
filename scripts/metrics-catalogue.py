#!/usr/bin/env python3
"""Writes the metrics catalogue (README-metrics.md) from a live /metrics scrape of a node.

usage: metrics-catalogue.py SCRAPE_FILE [--check README-metrics.md | --write README-metrics.md]

Name, type, labels and meaning come from the scrape itself (# TYPE, # HELP, the label
names of its samples), so the catalogue cannot drift from the node: `--check` fails when
the committed file differs from what the scrape gives.
"""

import re
import sys

HEADER = """\
# qnet-node metrics

Every metric the node serves at `GET /metrics` on its API port (Prometheus text format).
Names follow DESIGN.md §10: prefix `qnet_`, base units (seconds, bytes), counters end in
`_total`. `process_*` come from the Prometheus process collector (Linux).

When scraped with the config of `qnet-node devnet --prometheus FILE` (or
`dashboards/prometheus.yml`), every series also carries the target labels `instance`
(`node-<i>`), `region` (the node's own region) and `node_type`; a metric's own `region`
label (`qnet_members`, `qnet_region_health`: the region observed) takes precedence.

This table is generated from a live scrape of a devnet node; do not edit it by hand.
`scripts/observability-check.sh` regenerates it and fails if this file differs. To update:

```
scripts/observability-check.sh --update-catalogue
```

Monitoring a devnet in two commands (after `qnet-node devnet --prometheus prom/prometheus.yml`):

```
prometheus --config.file=prom/prometheus.yml --storage.tsdb.path=prom/prometheus-data --web.listen-address=127.0.0.1:9090
docker run --rm --network host -v "$PWD/dashboards:/var/lib/grafana/dashboards/qnet:ro" -v "$PWD/dashboards/provisioning:/etc/grafana/provisioning:ro" grafana/grafana
```

Dashboards: `dashboards/*.json`; alert rules: `dashboards/alerts.yml` (unit tests in
`dashboards/alerts_test.yml`).

| Name | Type | Labels | Meaning |
|---|---|---|---|
"""

SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
IGNORED_LABELS = {"le", "quantile"}
# Labels with a fixed set of values; the catalogue lists them. Other labels (region, route,
# method, status, node id) depend on the network and the traffic.
ENUMERATED = {"kind", "cluster", "direction", "monitor", "strategy", "state"}


def parse(text):
    """{family: {"type", "help", "labels"}} from Prometheus text format."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            _, _, name, *help_ = line.split(" ", 3)
            families.setdefault(name, {"labels": set()})["help"] = help_[0] if help_ else ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families.setdefault(name, {"labels": set()})["type"] = kind.strip()
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                continue
            name = family_of(m.group(1), families)
            fam = families.setdefault(name, {"labels": set()})
            for label, value in LABEL.findall(m.group(3) or ""):
                if label in IGNORED_LABELS:
                    continue
                fam["labels"].add(label)
                if label in ENUMERATED:
                    fam.setdefault("values", {}).setdefault(label, set()).add(value)
    return families


def family_of(sample, families):
    if sample in families:
        return sample
    for fam, info in families.items():
        for suffix in SUFFIXES.get(info.get("type"), ()):
            if sample == fam + suffix:
                return fam
    return sample


def render(families):
    rows = []
    for name in sorted(families):
        f = families[name]
        values = f.get("values", {})
        labels = ", ".join(
            f"`{l}` ({', '.join(sorted(values[l]))})" if l in values else f"`{l}`"
            for l in sorted(f["labels"])
        ) or "–"
        meaning = f.get("help", "").replace("|", "\\|")
        rows.append(f"| `{name}` | {f.get('type', 'untyped')} | {labels} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv):
    if len(argv) != 3 or argv[1] not in ("--check", "--write"):
        print(__doc__)
        return 2
    scrape, mode, target = argv
    with open(scrape) as f:
        text = render(parse(f.read()))
    if mode == "--write":
        with open(target, "w") as f:
            f.write(text)
        return 0
    try:
        with open(target) as f:
            current = f.read()
    except FileNotFoundError:
        current = ""
    if current == text:
        return 0
    import difflib
    sys.stdout.writelines(difflib.unified_diff(
        current.splitlines(True), text.splitlines(True), target, "live /metrics"))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
