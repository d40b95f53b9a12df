#!/usr/bin/env python3
"""Writes the four Grafana dashboards of qnet (dashboards/*.json) from one description.

The JSON files are committed so Grafana can provision them as they are; edit this file and
run `python3 dashboards/generate.py` to change them (`--check` fails if they are stale).
Every panel reads the `datasource` variable, every query is filtered by `$region` and
`$instance`, every rate uses `$__rate_interval`, and every panel has a unit.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
# Every series carries `region` and `instance`: the scrape config sets them on each target
# (honor_labels keeps a metric's own `region` label, e.g. the observed region of
# qnet_region_health).
SEL = 'region=~"$region", instance=~"$instance"'
RI = "$__rate_interval"
HEALTH_THRESHOLD = 0.8


def sel(extra=""):
    """A label selector body with the dashboard filters plus `extra` matchers."""
    return f"{extra}, {SEL}" if extra else SEL


REGION_EVENTS = sel('kind=~"region_lost|region_returned"')
LIVE = sel('state="live"')
DEAD = sel('state="dead"')
RPC_ERRORS = sel('outcome!="ok"')
HTTP_ERRORS = sel('status=~"[45].."')


def target(expr, legend="", ref="A", instant=False):
    t = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def health_thresholds():
    return {
        "mode": "absolute",
        "steps": [
            {"color": "red", "value": None},
            {"color": "green", "value": HEALTH_THRESHOLD},
        ],
    }


def panel(kind, title, unit, targets, desc="", health=False, thresholds=None, mappings=None,
          minmax=None, w=12, h=8, options=None):
    defaults = {"unit": unit}
    custom = {}
    if health:
        defaults["thresholds"] = health_thresholds()
        defaults["min"], defaults["max"] = 0, 1
        if kind == "timeseries":
            custom["thresholdsStyle"] = {"mode": "line+area"}
    elif thresholds is not None:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in thresholds],
        }
    if minmax is not None:
        defaults["min"], defaults["max"] = minmax
    if kind == "timeseries":
        custom.setdefault("drawStyle", "line")
        custom.setdefault("lineWidth", 1)
        custom.setdefault("fillOpacity", 10)
        custom.setdefault("showPoints", "never")
    if kind == "state-timeline":
        custom.setdefault("fillOpacity", 80)
    if custom:
        defaults["custom"] = custom
    if mappings:
        defaults["mappings"] = mappings
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or default_options(kind),
        "targets": [
            target(*t) if isinstance(t, tuple) else target(t)
            for t in targets
        ],
        "_w": w,
        "_h": h,
    }
    for i, t in enumerate(p["targets"]):
        t["refId"] = chr(ord("A") + i)
    return p


def default_options(kind):
    if kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    if kind == "gauge":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        }
    if kind == "bargauge":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    if kind == "state-timeline":
        return {
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        }
    return {}


ON_OFF = [
    {
        "type": "value",
        "options": {
            "0": {"text": "inactive", "color": "green", "index": 0},
            "1": {"text": "ACTIVE", "color": "red", "index": 1},
        },
    }
]


def annotation(name, color, expr, title, text):
    return {
        "name": name,
        "datasource": DS,
        "enable": True,
        "iconColor": color,
        "expr": expr,
        "step": "10s",
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": "instance,region",
        "useValueForTime": False,
    }


FAILOVER_ANNOTATIONS = [
    annotation(
        "Failover activated", "red",
        f"increase(qnet_failover_activations_total{{{sel()}}}[{RI}]) > 0",
        "failover activated", "{{instance}} ({{region}})",
    ),
    annotation(
        "Failover restored", "green",
        f"increase(qnet_failover_restorations_total{{{sel()}}}[{RI}]) > 0",
        "failover deactivated", "{{instance}} ({{region}})",
    ),
    annotation(
        "Region lost / returned", "orange",
        f"increase(qnet_failover_events_total{{{REGION_EVENTS}}}[{RI}]) > 0",
        "{{kind}}", "seen by {{instance}}",
    ),
]


def templating():
    def query_var(name, label, query):
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": f"qnet-{name}"},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "hide": 0,
        }

    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "regex": "",
            },
            query_var("region", "Region", "label_values(qnet_node_info, region)"),
            query_var(
                "instance", "Instance", 'label_values(qnet_node_info{region=~"$region"}, instance)'
            ),
        ]
    }


def layout(panels):
    """Assigns ids and grid positions left to right, wrapping at 24 columns."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"] = i
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
    return panels


def dashboard(uid, title, desc, panels, annotations=()):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["qnet"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": templating(),
        "annotations": {"list": list(annotations)},
        "links": [
            {"type": "dashboards", "tags": ["qnet"], "asDropdown": True, "title": "qnet"}
        ],
        "panels": layout(panels),
    }


def overview():
    return dashboard(
        "qnet-overview", "qnet / Network overview",
        "Live nodes per region, network and region health (0.8 warning threshold), routing "
        "strategy, failover state and missing regions.",
        [
            panel("stat", "Nodes scraped and up", "none",
                  [(f'count by (region) (up{{job="qnet", {SEL}}} == 1)', "{{region}}")],
                  "Nodes Prometheus scrapes successfully, per region.", w=6, h=5,
                  thresholds=[("blue", None)]),
            panel("gauge", "Network health (lowest node view)", "percentunit",
                  [(f"min(qnet_network_health{{{sel()}}})", "health")],
                  "Live / known members over all regions; the node that sees the least.",
                  health=True, w=6, h=5),
            panel("stat", "Failover", "none",
                  [(f"max(qnet_failover_active{{{sel()}}})", "failover")],
                  "1 while any selected node runs conservative failover.",
                  mappings=ON_OFF, thresholds=[("green", None), ("red", 1)], w=6, h=5),
            panel("stat", "Missing regions (most seen)", "none",
                  [(f"max(qnet_regions_missing{{{sel()}}})", "missing")],
                  "Regions known but without a live member.",
                  thresholds=[("green", None), ("orange", 1), ("red", 2)], w=6, h=5),
            panel("stat", "Routing strategy (nodes)", "none",
                  [(f"count by (strategy) (qnet_topology_strategy{{{sel()}}} == 1)",
                    "{{strategy}}")],
                  "How many nodes use each strategy (direct, regional_clustering, global_mesh).",
                  thresholds=[("blue", None)], w=12, h=5),
            panel("stat", "Ready nodes per region", "none",
                  [(f"sum by (region) (qnet_ready{{{sel()}}})", "{{region}}")],
                  "Nodes answering /health/ready with 200, by their own region.",
                  thresholds=[("red", None), ("green", 1)], w=12, h=5),
            panel("timeseries", "Live members per region (gossip view)", "none",
                  [(f"max by (region) (qnet_members{{{LIVE}}})",
                    "{{region}} live"),
                   (f"max by (region) (qnet_members{{{DEAD}}})",
                    "{{region}} dead")],
                  "Members per region as the selected nodes see them (other regions through "
                  "their bridges)."),
            panel("timeseries", "Network health per node", "percentunit",
                  [(f"qnet_network_health{{{sel()}}}", "{{instance}}")],
                  "Below 0.8 the regional health monitor logs a warning.", health=True),
            panel("timeseries", "Region health (lowest node view)", "percentunit",
                  [(f"min by (region) (qnet_region_health{{{sel()}}})", "{{region}}")],
                  "Live / known members per region.", health=True),
            panel("state-timeline", "Failover active per node", "none",
                  [(f"qnet_failover_active{{{sel()}}}", "{{instance}}")],
                  "Conservative failover state of each node.", mappings=ON_OFF,
                  thresholds=[("green", None), ("red", 1)]),
            panel("timeseries", "Missing regions per node", "none",
                  [(f"qnet_regions_missing{{{sel()}}}", "{{instance}}")],
                  "Failover activates when at least 2 regions other than the node's own are "
                  "missing.", thresholds=[("green", None), ("red", 2)]),
            panel("timeseries", "Process CPU", "percentunit",
                  [(f"rate(process_cpu_seconds_total{{{sel()}}}[{RI}])", "{{instance}}")],
                  "CPU time per second (1 = one core)."),
            panel("timeseries", "Process resident memory", "bytes",
                  [(f"process_resident_memory_bytes{{{sel()}}}", "{{instance}}")],
                  "Resident set size."),
            panel("timeseries", "Process open file descriptors", "none",
                  [(f"process_open_fds{{{sel()}}}", "{{instance}} open"),
                   (f"process_max_fds{{{sel()}}}", "{{instance}} limit")],
                  "Open file descriptors and their limit."),
        ],
        FAILOVER_ANNOTATIONS,
    )


def regions():
    return dashboard(
        "qnet-regions", "qnet / Regions and failover",
        "Health per region over time, failover activations, restorations and events "
        "(also as annotations), monitor checks and configured intervals, health warnings.",
        [
            panel("timeseries", "Region health over time (lowest node view)", "percentunit",
                  [(f"min by (region) (qnet_region_health{{{sel()}}})", "{{region}}")],
                  "Live / known members per region; 0 means the region is missing.",
                  health=True),
            panel("timeseries", "Network health per node", "percentunit",
                  [(f"qnet_network_health{{{sel()}}}", "{{instance}}")],
                  "The 0.8 line is the warning threshold.", health=True),
            panel("state-timeline", "Failover active per node", "none",
                  [(f"qnet_failover_active{{{sel()}}}", "{{instance}}")],
                  "Conservative failover state of each node.", mappings=ON_OFF,
                  thresholds=[("green", None), ("red", 1)]),
            panel("timeseries", "Failover activations and restorations", "short",
                  [(f"sum by (instance) (increase(qnet_failover_activations_total{{{sel()}}}[{RI}]))",
                    "{{instance}} activated"),
                   (f"sum by (instance) (increase(qnet_failover_restorations_total{{{sel()}}}[{RI}]))",
                    "{{instance}} restored")],
                  "Activations and deactivations after gradual restoration."),
            panel("timeseries", "Failover events by kind", "short",
                  [(f"sum by (kind) (increase(qnet_failover_events_total{{{sel()}}}[{RI}]))",
                    "{{kind}}")],
                  "activated, deactivated, region_lost, region_returned."),
            panel("timeseries", "Missing regions per node", "none",
                  [(f"qnet_regions_missing{{{sel()}}}", "{{instance}}")],
                  "Regions known but without a live member.",
                  thresholds=[("green", None), ("red", 2)]),
            panel("timeseries", "Monitor checks per second", "cps",
                  [(f"sum by (monitor) (rate(qnet_monitor_checks_total{{{sel()}}}[{RI}]))",
                    "{{monitor}}")],
                  "Checks of the regional health and failover monitors, over the selected nodes."),
            panel("stat", "Configured monitor intervals", "s",
                  [(f"max by (monitor) (qnet_monitor_interval_seconds{{{sel()}}})", "{{monitor}}")],
                  "regional_monitor_interval and failover_monitor_interval (longest configured).",
                  thresholds=[("blue", None)], w=6),
            panel("timeseries", "Health warnings", "short",
                  [(f"sum by (instance) (increase(qnet_health_warnings_total{{{sel()}}}[{RI}]))",
                    "{{instance}}")],
                  "WARN lines of the regional health monitor (network health below 0.8).",
                  w=18),
        ],
        FAILOVER_ANNOTATIONS,
    )


def chain():
    bucket = f"qnet_block_propagation_seconds_bucket{{{sel()}}}"
    return dashboard(
        "qnet-chain", "qnet / Chain",
        "Height per node, block production and import, propagation delay, rejected blocks, "
        "reorgs, mempool, transactions and sync progress.",
        [
            panel("timeseries", "Chain height per node", "none",
                  [(f"qnet_chain_height{{{sel()}}}", "{{instance}}")],
                  "Height of each node's best head."),
            panel("timeseries", "Blocks produced and imported", "cps",
                  [(f"sum by (instance) (rate(qnet_blocks_produced_total{{{sel()}}}[{RI}]))",
                    "{{instance}} produced"),
                   (f"sum by (instance) (rate(qnet_blocks_imported_total{{{sel()}}}[{RI}]))",
                    "{{instance}} imported")],
                  "Blocks per second."),
            panel("timeseries", "Block propagation delay", "s",
                  [(f"histogram_quantile(0.5, sum by (le) (rate({bucket}[{RI}])))", "p50"),
                   (f"histogram_quantile(0.9, sum by (le) (rate({bucket}[{RI}])))", "p90"),
                   (f"histogram_quantile(0.99, sum by (le) (rate({bucket}[{RI}])))", "p99")],
                  "Import time minus block timestamp, over the selected nodes."),
            panel("timeseries", "Rejected blocks by reason", "cps",
                  [(f"sum by (reason) (rate(qnet_blocks_rejected_total{{{sel()}}}[{RI}]))",
                    "{{reason}}")],
                  "Invalid blocks; the sending peer is penalised."),
            panel("timeseries", "Reorgs", "short",
                  [(f"sum by (instance) (increase(qnet_reorgs_total{{{sel()}}}[{RI}]))",
                    "{{instance}}")],
                  "Reorgs applied (after a partition heals).", w=8),
            panel("timeseries", "Reorg depth (max)", "none",
                  [(f"histogram_quantile(1, sum by (instance, le) "
                    f"(rate(qnet_reorg_depth_bucket{{{sel()}}}[{RI}])))", "{{instance}}")],
                  "Deepest reorganisation per node in the window (blocks undone; "
                  "histogram upper bound).", w=8),
            panel("timeseries", "Mempool transactions", "none",
                  [(f"qnet_mempool_transactions{{{sel()}}}", "{{instance}}")],
                  "Transactions waiting for a block.", w=8),
            panel("timeseries", "Transactions by result", "cps",
                  [(f"sum by (result) (rate(qnet_transactions_total{{{sel()}}}[{RI}]))",
                    "{{result}}")],
                  "Transactions accepted and rejected per second."),
            panel("bargauge", "Sync progress", "percentunit",
                  [(f"clamp_max(qnet_chain_height{{{sel()}}} / (qnet_sync_target_height{{{sel()}}} > 0), 1)",
                    "{{instance}}")],
                  "Height / sync target height per node.",
                  thresholds=[("red", None), ("orange", 0.5), ("green", 0.99)], minmax=(0, 1),
                  w=6),
            panel("timeseries", "Blocks behind the sync target", "none",
                  [(f"clamp_min(qnet_sync_target_height{{{sel()}}} - qnet_chain_height{{{sel()}}}, 0)",
                    "{{instance}}")],
                  "How far each node is behind the best height its peers announce.", w=6),
        ],
    )


def api_gossip():
    rpc_bucket = f"qnet_rpc_request_duration_seconds_bucket{{{sel()}}}"
    http_bucket = f"qnet_http_request_duration_seconds_bucket{{{sel()}}}"
    return dashboard(
        "qnet-api-gossip", "qnet / API and gossip",
        "JSON-RPC and REST requests, latency and errors, WebSocket subscriptions, gossip "
        "bytes and datagrams by cluster and direction.",
        [
            panel("timeseries", "JSON-RPC calls by method", "reqps",
                  [(f"sum by (method) (rate(qnet_rpc_requests_total{{{sel()}}}[{RI}]))",
                    "{{method}}")],
                  "Calls per second over HTTP and WebSocket."),
            panel("timeseries", "JSON-RPC errors by method and outcome", "reqps",
                  [(f"sum by (method, outcome) (rate(qnet_rpc_requests_total{{{RPC_ERRORS}}}[{RI}]))",
                    "{{method}} {{outcome}}")],
                  "Calls answered with an error."),
            panel("timeseries", "JSON-RPC latency p99 by method", "s",
                  [(f"histogram_quantile(0.99, sum by (method, le) (rate({rpc_bucket}[{RI}])))",
                    "{{method}}")],
                  "99th percentile of call latency."),
            panel("timeseries", "HTTP requests by route and status", "reqps",
                  [(f"sum by (route, status) (rate(qnet_http_requests_total{{{sel()}}}[{RI}]))",
                    "{{route}} {{status}}")],
                  "REST requests per second by route template."),
            panel("timeseries", "HTTP error ratio (4xx and 5xx)", "percentunit",
                  [(f"sum(rate(qnet_http_requests_total{{{HTTP_ERRORS}}}[{RI}]))"
                    f" / sum(rate(qnet_http_requests_total{{{sel()}}}[{RI}]))", "errors")],
                  "Share of REST requests answered with a client or server error.",
                  minmax=(0, 1)),
            panel("timeseries", "HTTP latency p99 by route", "s",
                  [(f"histogram_quantile(0.99, sum by (route, le) (rate({http_bucket}[{RI}])))",
                    "{{route}}")],
                  "99th percentile of request latency."),
            panel("timeseries", "WebSocket connections and subscriptions", "none",
                  [(f"sum(qnet_ws_connections{{{sel()}}})", "connections"),
                   (f"sum(qnet_ws_subscriptions{{{sel()}}})", "subscriptions")],
                  "Open JSON-RPC WebSocket connections and subscriptions."),
            panel("timeseries", "Data-plane handshake failures", "cps",
                  [(f"sum by (instance) (rate(qnet_handshake_failures_total{{{sel()}}}[{RI}]))",
                    "{{instance}}")],
                  "Connections refused by the handshake (wrong key, chain or genesis)."),
            panel("timeseries", "Gossip bytes by cluster and direction", "Bps",
                  [(f"sum by (cluster, direction) (rate(qnet_gossip_bytes_total{{{sel()}}}[{RI}]))",
                    "{{cluster}} {{direction}}")],
                  "Regional and bridge cluster traffic: sent, received, dropped by the guard."),
            panel("timeseries", "Gossip datagrams by cluster and direction", "pps",
                  [(f"sum by (cluster, direction) (rate(qnet_gossip_messages_total{{{sel()}}}[{RI}]))",
                    "{{cluster}} {{direction}}")],
                  "Datagrams per second."),
            panel("timeseries", "Data-plane links in use", "none",
                  [(f"sum by (kind) (qnet_links{{{sel()}}})", "{{kind}}")],
                  "in_region and cross_region links chosen by the routing strategy."),
            panel("stat", "Bridges", "none",
                  [(f"sum by (region) (qnet_bridge{{{sel()}}})", "{{region}}")],
                  "Nodes currently serving as their region's bridge.",
                  thresholds=[("red", None), ("green", 1)]),
        ],
    )


DASHBOARDS = {
    "network-overview.json": overview,
    "regions-failover.json": regions,
    "chain.json": chain,
    "api-gossip.json": api_gossip,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 dashboards/generate.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
