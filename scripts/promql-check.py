#!/usr/bin/env python3
"""Evaluates every PromQL expression of the dashboards and of the loaded alert rules against
a running Prometheus (HTTP API): each must parse, and every metric it names must exist in
the scraped data. Prints one `PASS ...` or `FAIL ...` line per expression.

usage: promql-check.py PROMETHEUS_URL DASHBOARD.json...
Alert rules are taken from the Prometheus itself (/api/v1/rules), i.e. the rules it loaded.
"""

import json
import re
import sys
import urllib.parse
import urllib.request

# Grafana variables, replaced by values Prometheus accepts. `$__rate_interval` becomes a
# window that holds several scrapes even at 1 s.
VARIABLES = [
    ("$__rate_interval", "30s"),
    ("$__interval", "5s"),
    ("$__range", "5m"),
    ("${datasource}", ""),
    ("$region", ".*"),
    ("$instance", ".*"),
]
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
BRACES = re.compile(r"\{[^}]*\}")
RANGES = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT = re.compile(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$")


def get(base, path, params=None):
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        # Prometheus answers bad queries with 400 and a JSON error body.
        return json.load(e)


def metric_names(expr):
    """Metric names an expression selects (functions, keywords and labels excluded)."""
    text = STRING.sub('""', expr)
    names = set()
    # A selector `{__name__="x"}` names its metric inside the braces.
    names.update(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = BRACES.sub(" ", text)
    text = RANGES.sub(" ", text)
    text = GROUPING.sub(" ", text)
    for m in IDENT.finditer(text):
        rest = text[m.end():].lstrip()
        word = m.group(0)
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def substitute(expr):
    for var, value in VARIABLES:
        expr = expr.replace(var, value)
    return expr


def collect(dashboards):
    """(where, expression) for every panel target, annotation and template variable."""
    out = []
    for path in dashboards:
        with open(path) as f:
            dash = json.load(f)
        name = path.rsplit("/", 1)[-1]
        for p in dash.get("panels", []):
            for t in p.get("targets", []):
                out.append((f"{name}: panel {p['title']!r} {t['refId']}", t["expr"]))
        for a in dash.get("annotations", {}).get("list", []):
            if "expr" in a:
                out.append((f"{name}: annotation {a['name']!r}", a["expr"]))
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            m = LABEL_VALUES.match(v["query"]["query"])
            if not m:
                out.append((f"{name}: variable ${v['name']}", v["query"]["query"]))
                continue
            # label_values(selector, label) is Grafana's; check it as a grouping query.
            out.append((f"{name}: variable ${v['name']}",
                        f"count by ({m.group(2)}) ({m.group(1)})"))
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    base, dashboards = argv[0], argv[1:]
    known = set(get(base, "/api/v1/label/__name__/values").get("data", []))
    exprs = collect(dashboards)
    rules = get(base, "/api/v1/rules").get("data", {}).get("groups", [])
    for g in rules:
        for r in g.get("rules", []):
            exprs.append((f"alert rule {r.get('name')}", r["query"]))
    if not rules:
        print("FAIL prometheus loaded no alert rules")
    failed = 0
    for where, expr in exprs:
        query = substitute(expr)
        answer = get(base, "/api/v1/query", {"query": query})
        problems = []
        if answer.get("status") != "success":
            problems.append(f"does not evaluate: {answer.get('error', answer)}")
        missing = sorted(n for n in metric_names(query) if n not in known)
        if missing:
            problems.append("metrics not in the scraped data: " + ", ".join(missing))
        if problems:
            failed += 1
            print(f"FAIL {where}: {'; '.join(problems)}\n     expr: {expr}")
        else:
            n = len(answer["data"]["result"]) if answer["data"]["resultType"] != "scalar" else 1
            print(f"PASS {where} ({n} series)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
