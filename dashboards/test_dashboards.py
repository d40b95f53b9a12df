#!/usr/bin/env python3
"""Structure test of the Grafana dashboards: `python3 dashboards/test_dashboards.py`.

Checks the provisioning rules (datasource variable on every panel and query, no
`__inputs`, `$region`/`$instance` from label_values, `$__rate_interval` in every range, a
unit on every panel, the 0.8 threshold drawn on health panels, failover annotations) and
pins the panel type and unit of every panel, so a change to either is deliberate.
"""

import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS_UID = "${datasource}"

# title -> (panel type, unit), per dashboard file.
EXPECTED = {
    "network-overview.json": {
        "Nodes scraped and up": ("stat", "none"),
        "Network health (lowest node view)": ("gauge", "percentunit"),
        "Failover": ("stat", "none"),
        "Missing regions (most seen)": ("stat", "none"),
        "Routing strategy (nodes)": ("stat", "none"),
        "Ready nodes per region": ("stat", "none"),
        "Live members per region (gossip view)": ("timeseries", "none"),
        "Network health per node": ("timeseries", "percentunit"),
        "Region health (lowest node view)": ("timeseries", "percentunit"),
        "Failover active per node": ("state-timeline", "none"),
        "Missing regions per node": ("timeseries", "none"),
        "Process CPU": ("timeseries", "percentunit"),
        "Process resident memory": ("timeseries", "bytes"),
        "Process open file descriptors": ("timeseries", "none"),
    },
    "regions-failover.json": {
        "Region health over time (lowest node view)": ("timeseries", "percentunit"),
        "Network health per node": ("timeseries", "percentunit"),
        "Failover active per node": ("state-timeline", "none"),
        "Failover activations and restorations": ("timeseries", "short"),
        "Failover events by kind": ("timeseries", "short"),
        "Missing regions per node": ("timeseries", "none"),
        "Monitor checks per second": ("timeseries", "cps"),
        "Configured monitor intervals": ("stat", "s"),
        "Health warnings": ("timeseries", "short"),
    },
    "chain.json": {
        "Chain height per node": ("timeseries", "none"),
        "Blocks produced and imported": ("timeseries", "cps"),
        "Block propagation delay": ("timeseries", "s"),
        "Rejected blocks by reason": ("timeseries", "cps"),
        "Reorgs": ("timeseries", "short"),
        "Reorg depth (max)": ("timeseries", "none"),
        "Mempool transactions": ("timeseries", "none"),
        "Transactions by result": ("timeseries", "cps"),
        "Sync progress": ("bargauge", "percentunit"),
        "Blocks behind the sync target": ("timeseries", "none"),
    },
    "api-gossip.json": {
        "JSON-RPC calls by method": ("timeseries", "reqps"),
        "JSON-RPC errors by method and outcome": ("timeseries", "reqps"),
        "JSON-RPC latency p99 by method": ("timeseries", "s"),
        "HTTP requests by route and status": ("timeseries", "reqps"),
        "HTTP error ratio (4xx and 5xx)": ("timeseries", "percentunit"),
        "HTTP latency p99 by route": ("timeseries", "s"),
        "WebSocket connections and subscriptions": ("timeseries", "none"),
        "Data-plane handshake failures": ("timeseries", "cps"),
        "Gossip bytes by cluster and direction": ("timeseries", "Bps"),
        "Gossip datagrams by cluster and direction": ("timeseries", "pps"),
        "Data-plane links in use": ("timeseries", "none"),
        "Bridges": ("stat", "none"),
    },
}

# Panels that must draw the 0.8 health threshold.
HEALTH_METRICS = ("qnet_network_health", "qnet_region_health")
RANGE = re.compile(r"\[([^\]]+)\]")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def load(name):
    return json.loads((HERE / name).read_text())


def exprs(dash):
    """Every PromQL expression of a dashboard: panel targets and annotations."""
    out = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    out += [a["expr"] for a in dash["annotations"]["list"]]
    return out


class DashboardTest(unittest.TestCase):
    def test_every_dashboard_file_is_known(self):
        files = sorted(p.name for p in HERE.glob("*.json"))
        self.assertEqual(files, sorted(EXPECTED))

    def test_generated_files_are_current(self):
        r = subprocess.run([sys.executable, str(HERE / "generate.py"), "--check"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_panel_types_and_units(self):
        for name, expected in EXPECTED.items():
            dash = load(name)
            got = {
                p["title"]: (p["type"], p["fieldConfig"]["defaults"].get("unit"))
                for p in dash["panels"]
            }
            self.assertEqual(got, expected, name)
            self.assertEqual(len(dash["panels"]), len(expected), f"{name}: duplicate titles")

    def test_provisioning_ready(self):
        uids = set()
        for name in EXPECTED:
            dash = load(name)
            text = (HERE / name).read_text()
            self.assertNotIn("__inputs", dash, name)
            self.assertNotIn("__requires", dash, name)
            self.assertNotIn("${DS_", text, f"{name}: exported datasource input left over")
            self.assertTrue(dash["uid"].startswith("qnet-"), name)
            self.assertNotIn(dash["uid"], uids)
            uids.add(dash["uid"])
            ids = [p["id"] for p in dash["panels"]]
            self.assertEqual(len(ids), len(set(ids)), f"{name}: duplicate panel ids")

    def test_template_variables(self):
        for name in EXPECTED:
            variables = {v["name"]: v for v in load(name)["templating"]["list"]}
            self.assertEqual(set(variables), {"datasource", "region", "instance"}, name)
            ds = variables["datasource"]
            self.assertEqual((ds["type"], ds["query"]), ("datasource", "prometheus"), name)
            for var in ("region", "instance"):
                v = variables[var]
                self.assertEqual(v["type"], "query", name)
                self.assertEqual(v["datasource"]["uid"], DS_UID, name)
                self.assertRegex(v["query"]["query"], rf"^label_values\(.+, {var}\)$", name)
                self.assertTrue(v["includeAll"] and v["multi"], name)
                self.assertEqual(v["allValue"], ".*", name)

    def test_datasource_variable_on_every_panel_and_query(self):
        for name in EXPECTED:
            dash = load(name)
            for p in dash["panels"]:
                self.assertEqual(p["datasource"], {"type": "prometheus", "uid": DS_UID},
                                 f"{name}: {p['title']}")
                self.assertTrue(p["targets"], f"{name}: {p['title']} has no query")
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], DS_UID, f"{name}: {p['title']}")
            for a in dash["annotations"]["list"]:
                self.assertEqual(a["datasource"]["uid"], DS_UID, f"{name}: {a['name']}")

    def test_queries_filter_and_use_rate_interval(self):
        for name in EXPECTED:
            for e in exprs(load(name)):
                self.assertIn('region=~"$region"', e)
                self.assertIn('instance=~"$instance"', e)
                for window in RANGE.findall(STRING.sub('""', e)):
                    self.assertEqual(window, "$__rate_interval", e)

    def test_health_panels_draw_the_threshold(self):
        seen = 0
        for name in EXPECTED:
            for p in load(name)["panels"]:
                if not any(m in t["expr"] for t in p["targets"] for m in HEALTH_METRICS):
                    continue
                seen += 1
                d = p["fieldConfig"]["defaults"]
                steps = [s["value"] for s in d["thresholds"]["steps"]]
                self.assertIn(0.8, steps, p["title"])
                self.assertEqual((d["min"], d["max"]), (0, 1), p["title"])
                if p["type"] == "timeseries":
                    mode = d["custom"]["thresholdsStyle"]["mode"]
                    self.assertIn("line", mode, p["title"])
        self.assertGreaterEqual(seen, 5)

    def test_failover_events_are_annotations(self):
        for name in ("network-overview.json", "regions-failover.json"):
            notes = load(name)["annotations"]["list"]
            text = " ".join(a["expr"] for a in notes)
            for metric in ("qnet_failover_activations_total",
                           "qnet_failover_restorations_total",
                           "qnet_failover_events_total"):
                self.assertIn(metric, text, name)
            self.assertTrue(all(a["enable"] for a in notes), name)


if __name__ == "__main__":
    unittest.main(verbosity=1)
