#!/usr/bin/env python3
"""check_grafana.py: checks deploy/grafana/lightfarm-dashboard.json against what a farm exports.

    check_grafana.py DASHBOARD.json METRICS.txt

METRICS.txt is a scrape of a real farm's GET /metrics (test_grafana.sh runs one). Checks:
1. The dashboard is a Grafana dashboard as Grafana imports it: a JSON object with title, uid,
   schemaVersion, a `datasource` template variable (type datasource, Prometheus) that every panel and
   target names, and panels of known types, each with a unique id, a title, a gridPos inside the 24
   columns that overlaps no other panel, and targets with a refId and a PromQL expr.
2. Every metric name an expr uses (lf_*) is one the scrape has (histogram series _bucket/_sum/_count
   included), and every label it groups by (`by (...)`) is a label those metrics carry.
3. The PromQL is well-formed as far as this can see: balanced brackets, quotes closed, only the
   functions and aggregations the dashboard means to use.
Exit 0 = good; 1 = problems, one per line. Python's standard library only.
"""
import json
import re
import sys

PANEL_TYPES = {"timeseries", "stat", "heatmap", "gauge", "bargauge", "table", "text", "row"}
FUNCS = {"rate", "increase", "histogram_quantile", "sum", "max", "min", "avg", "count", "by", "without"}


def scrape(path):
    """{metric name: set of label names} from a Prometheus text exposition."""
    names = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if not m:
            continue
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        names.setdefault(m.group(1), set()).update(labels)
    return names


def check_expr(where, expr, exported, errors):
    # Brackets and quotes.
    depth = {"(": 0, "[": 0, "{": 0}
    pairs = {")": "(", "]": "[", "}": "{"}
    inq = False
    for ch in expr:
        if ch == '"':
            inq = not inq
        elif not inq and ch in depth:
            depth[ch] += 1
        elif not inq and ch in pairs:
            depth[pairs[ch]] -= 1
            if depth[pairs[ch]] < 0:
                errors.append("%s: unbalanced '%s' in %s" % (where, ch, expr))
    if inq or any(depth.values()):
        errors.append("%s: unbalanced brackets or quotes in %s" % (where, expr))
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    metrics = set(re.findall(r"\blf_[a-z0-9_]+\b", bare))
    if not metrics:
        errors.append("%s: no lf_ metric in %s" % (where, expr))
    labels = set()
    for name in metrics:
        if name not in exported:
            errors.append("%s: metric %s is not exported (not in the farm's /metrics)" % (where, name))
        else:
            labels |= exported[name]
    for word in re.findall(r"\b([a-z_]+)\s*\(", bare):
        if word not in FUNCS:
            errors.append("%s: unexpected function %s( in %s" % (where, word, expr))
    for group in re.findall(r"\bby\s*\(([^)]*)\)", bare):
        for label in (l.strip() for l in group.split(",") if l.strip()):
            if label not in labels:
                errors.append("%s: groups by '%s', a label none of %s carries" % (where, label, sorted(metrics)))


def main(argv):
    dash_path, metrics_path = argv[1], argv[2]
    errors = []
    try:
        d = json.load(open(dash_path))
    except ValueError as e:
        print("  %s: not JSON: %s" % (dash_path, e))
        return 1
    exported = scrape(metrics_path)
    if not exported:
        errors.append("%s: no samples" % metrics_path)
    for key, typ in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(d.get(key), typ):
            errors.append("dashboard: %s missing or not a %s" % (key, typ.__name__))
    ds_vars = [v for v in d.get("templating", {}).get("list", []) if v.get("type") == "datasource"]
    if not any(v.get("name") == "datasource" and v.get("query") == "prometheus" for v in ds_vars):
        errors.append("dashboard: no templating variable 'datasource' of type datasource (prometheus)")
    ids, cells = set(), {}
    for p in d.get("panels", []):
        where = "panel %r" % p.get("title")
        if not p.get("title"):
            errors.append("a panel without a title: id %s" % p.get("id"))
        if p.get("type") not in PANEL_TYPES:
            errors.append("%s: unknown type %r" % (where, p.get("type")))
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            errors.append("%s: id %r missing or repeated" % (where, p.get("id")))
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] < 0 or g["x"] + g["w"] > 24 or g["w"] < 1 or g["h"] < 1:
            errors.append("%s: bad gridPos %s" % (where, g))
        else:
            for cx in range(g["x"], g["x"] + g["w"]):
                for cy in range(g["y"], g["y"] + g["h"]):
                    if (cx, cy) in cells:
                        errors.append("%s overlaps panel %r" % (where, cells[(cx, cy)]))
                        break
                    cells[(cx, cy)] = p.get("title")
                else:
                    continue
                break
        if p.get("type") in ("row", "text"):
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append("%s: datasource is not the ${datasource} variable" % where)
        targets = p.get("targets") or []
        if not targets:
            errors.append("%s: no targets" % where)
        refs = set()
        for t in targets:
            if not t.get("refId") or t["refId"] in refs:
                errors.append("%s: target refId %r missing or repeated" % (where, t.get("refId")))
            refs.add(t.get("refId"))
            if not isinstance(t.get("expr"), str) or not t["expr"].strip():
                errors.append("%s: target %s has no expr" % (where, t.get("refId")))
                continue
            check_expr("%s %s" % (where, t["refId"]), t["expr"], exported, errors)
    for e in errors:
        print("  " + e)
    n_t = sum(len(p.get("targets", [])) for p in d.get("panels", []))
    print("%s: %d panels, %d queries, %d exported metric names: %s" % (
        dash_path, len(d.get("panels", [])), n_t, len(exported), "%d problem(s)" % len(errors) if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
