"""Dashboards and alerts as code (deploy/observability): structure, PromQL syntax and metric names.

Every PromQL expression, in the alert rules and in the dashboard, is parsed by `promql-parser`
(the Rust parser of GreptimeDB, the grammar of Prometheus), and every series it selects must be
one the processes export, with labels and label values they really set: a typo fails here,
not silently on a wall screen.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml

from service.domain.model import Reason

HERE = Path(__file__).resolve().parents[2] / "deploy" / "observability"
ALERTS_FILE = HERE / "prometheus-alerts.yaml"
DASHBOARD_FILE = HERE / "grafana-dashboard.json"
SCRAPE_FILE = HERE / "prometheus-scrape.yaml"

ALERTS = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
DASHBOARD = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
SCRAPE = yaml.safe_load(SCRAPE_FILE.read_text(encoding="utf-8"))

# --- what the processes export (Prometheus exposition names), with their labels

SERVICES = {"worker", "notifier"}
WORKER_OUTCOMES = {"applied", "rejected", "partial", "invalid", "duplicate", "skipped"}
NOTIFIER_OUTCOMES = {"notified", "ignored", "notify_false", "unparseable", "failed"}
DEAD_LETTER_REASONS = {"not_json", "unknown_type", "validation_failed", "too_large", "processing_failed"}

COUNTERS = {
    "orderstatus_messages_total": {"outcome": WORKER_OUTCOMES | NOTIFIER_OUTCOMES},
    "orderstatus_outbox_published_total": {},
    "orderstatus_outage_retries_total": {"dependency": None},
    "orderstatus_emails_total": {"outcome": {"sent", "failed", "in_doubt", "duplicate"}},
    "orderstatus_outbox_errors_total": {"error": None},
    "orderstatus_rejections_total": {"reason": {r.value for r in Reason} | {"actor_not_authenticated"}},
    "orderstatus_dead_letters_total": {"reason": DEAD_LETTER_REASONS},
}
GAUGES = {
    "orderstatus_outbox_unpublished": {},
    "orderstatus_outbox_oldest_unpublished_seconds": {},
    "orderstatus_outbox_parked": {},
    "orderstatus_consumer_lag": {"topic": None, "partition": None},
    "orderstatus_ready": {},
}
HISTOGRAMS = {"orderstatus_batch_seconds": {}, "orderstatus_end_to_end_seconds": {}}
# labels Prometheus adds at scrape time (prometheus-scrape.yaml relabels namespace and pod)
TARGET_LABELS = {"job", "instance", "namespace", "pod"}


def exported_series() -> dict[str, dict[str, set[str] | None]]:
    """Every selectable series name -> its labels (None: any value) as Prometheus stores them."""
    series: dict[str, dict[str, set[str] | None]] = {}
    for name, labels in {**COUNTERS, **GAUGES}.items():
        series[name] = {"service": SERVICES, **labels}
    for name, labels in HISTOGRAMS.items():
        series[f"{name}_bucket"] = {"service": SERVICES, "le": None, **labels}
        series[f"{name}_sum"] = {"service": SERVICES, **labels}
        series[f"{name}_count"] = {"service": SERVICES, **labels}
    series["up"] = {}  # Prometheus's own per-target series, for "process down"
    for labels in series.values():
        labels.update({k: None for k in TARGET_LABELS})
    return series


SERIES = exported_series()

# Grafana's built-in interval variables, replaced by sample values before parsing
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def parse(expr: str):
    """Parse PromQL, after replacing the Grafana macros; any other `$` is an error."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return promql_parser.parse(expr)


def check_names_and_labels(expr: str) -> set[str]:
    """Raise AssertionError for an unknown series, label or label value; return the series names used."""
    ast = parse(expr)
    selectors, groupings = [], []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            selectors.append(node)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            groupings.extend(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                groupings.extend(node.modifier.matching.labels)
            groupings.extend(node.modifier.group_labels or [])

    promql_parser.walk(ast, visit)
    assert selectors, f"no series selected in {expr!r}"
    names = set()
    for sel in selectors:
        assert sel.name, f"select series by a literal name, not by a __name__ matcher: {expr!r}"
        assert sel.name in SERIES, f"unknown series {sel.name!r} in {expr!r}"
        names.add(sel.name)
        known = SERIES[sel.name]
        for m in sel.matchers.matchers:
            assert m.name in known, f"{sel.name} has no label {m.name!r} ({expr!r})"
            values = known[m.name]
            if values is None:
                continue
            if m.op == promql_parser.MatchOp.Equal:
                assert m.value in values, f"{sel.name}{{{m.name}}} is never {m.value!r} ({expr!r})"
            elif m.op == promql_parser.MatchOp.Re:
                assert any(re.fullmatch(m.value, v) for v in values), f"{m.name}=~{m.value!r} matches nothing"
    usable = set().union(*(SERIES[n] for n in names))
    for label in groupings:
        assert label in usable, f"grouping by {label!r}, which none of {sorted(names)} has ({expr!r})"
    return names


def series_names(expr: str) -> set[str]:
    """The series names an expression selects (no checks: see check_names_and_labels)."""
    names: set[str] = set()
    promql_parser.walk(
        parse(expr), lambda n: names.add(n.name) if isinstance(n, promql_parser.VectorSelector) else None
    )
    return names


def alert_rules() -> list[dict]:
    return [rule for group in ALERTS["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[tuple[dict, dict]]:
    return [(panel, target) for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]


EXPRESSIONS = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()] + [
    (f"panel {p['id']} {t['refId']}", t["expr"]) for p, t in dashboard_targets()
]

# --- schemas

DURATION = r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"
RULES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^orderstatus\.[a-z.-]+$"},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["alert", "expr", "for", "labels", "annotations"],
                            "properties": {
                                "alert": {"type": "string", "pattern": r"^Orderstatus[A-Z][A-Za-z]+$"},
                                "expr": {"type": "string", "minLength": 1},
                                "for": {"type": "string", "pattern": DURATION},
                                "keep_firing_for": {"type": "string", "pattern": DURATION},
                                "labels": {
                                    "type": "object",
                                    "required": ["severity"],
                                    "properties": {"severity": {"enum": ["critical", "warning", "info"]}},
                                    "additionalProperties": {"type": "string"},
                                },
                                "annotations": {
                                    "type": "object",
                                    "required": ["summary", "description", "runbook"],
                                    "additionalProperties": {"type": "string", "minLength": 1},
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}

DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${datasource}"}},
}
GRID = {
    "type": "object",
    "required": ["x", "y", "w", "h"],
    "properties": {
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": {"type": "integer", "minimum": 0},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "h": {"type": "integer", "minimum": 1},
    },
}
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["name", "type", "query"],
                        "properties": {
                            "name": {"const": "datasource"},
                            "type": {"const": "datasource"},
                            "query": {"const": "prometheus"},
                        },
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {"id": {"type": "integer", "minimum": 1}, "title": {"type": "string", "minLength": 1},
                               "gridPos": GRID},
                "if": {"properties": {"type": {"const": "row"}}},
                "then": {"properties": {"panels": {"type": "array", "maxItems": 0}}, "not": {"required": ["targets"]}},
                "else": {
                    "required": ["datasource", "targets", "description"],
                    "properties": {
                        "type": {"enum": ["timeseries", "stat", "state-timeline", "gauge", "bargauge", "table"]},
                        "datasource": DATASOURCE,
                        "targets": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["refId", "expr", "datasource"],
                                "properties": {
                                    "refId": {"type": "string", "pattern": "^[A-Z]$"},
                                    "expr": {"type": "string", "minLength": 1},
                                    "datasource": DATASOURCE,
                                    "legendFormat": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


# --- the tests


class TestPromqlParser:
    def test_parser_imports_parses_and_refuses(self):
        """promql-parser is importable, parses a good expression and raises on a broken one (so a pass means something)."""
        ok = promql_parser.parse('sum by (le) (rate(orderstatus_end_to_end_seconds_bucket{service="worker"}[5m]))')
        assert isinstance(ok, promql_parser.AggregateExpr)
        for broken in ("rate(orderstatus_ready[5m]", "rate(orderstatus_ready)", "sum by (x (y)", "a >> b"):
            with pytest.raises(ValueError):
                promql_parser.parse(broken)

    def test_name_check_catches_typos(self):
        """The name-and-label check refuses a misspelled series, label, label value or grouping label."""
        assert check_names_and_labels('sum by (reason) (rate(orderstatus_rejections_total{reason="no_change"}[5m]))')
        for bad in (
            "orderstatus_consumer_lags",  # series
            "orderstatus_outbox_parked_total",  # a gauge has no _total
            "rate(orderstatus_ready_bucket[5m])",  # a gauge has no buckets
            'orderstatus_emails_total{outcom="sent"}',  # label
            'orderstatus_emails_total{outcome="in-doubt"}',  # value
            'orderstatus_dead_letters_total{reason=~"not_jsn|too_big"}',  # regex matching no value
            'orderstatus_messages_total{service="gateway"}',  # service
            "sum by (reasn) (orderstatus_rejections_total)",  # grouping label
            'rate({__name__="orderstatus_ready"}[5m])',  # name not literal
            "rate(orderstatus_ready[$interval])",  # unknown Grafana variable
        ):
            with pytest.raises(AssertionError):
                check_names_and_labels(bad)

    @pytest.mark.parametrize("where, expr", EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
    def test_expression_parses_and_uses_exported_series(self, where, expr):
        """Each alert and panel expression is valid PromQL selecting only series, labels and values the processes export."""
        check_names_and_labels(expr)


class TestAlertRules:
    @pytest.mark.subprocess
    def test_rule_file_structure(self):
        """The rule file has the shape Prometheus loads (groups, alerts with expr/for/labels/annotations); promtool agrees when installed."""
        jsonschema.validate(ALERTS, RULES_SCHEMA)
        names = [r["alert"] for r in alert_rules()]
        assert len(names) == len(set(names)), "alert names are unique"
        groups = [g["name"] for g in ALERTS["groups"]]
        assert len(groups) == len(set(groups)), "group names are unique"
        promtool = shutil.which("promtool")
        if promtool:
            done = subprocess.run([promtool, "check", "rules", str(ALERTS_FILE)], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr

    def test_schema_refuses_a_broken_rule(self):
        """The rule schema is strict: a rule without `for`, a bad duration, an unknown key or severity is refused."""
        rule = {"alert": "OrderstatusExample", "expr": "orderstatus_ready == 0", "for": "5m",
                "labels": {"severity": "warning"}, "annotations": {"summary": "s", "description": "d", "runbook": "r"}}
        jsonschema.validate({"groups": [{"name": "orderstatus.x", "rules": [rule]}]}, RULES_SCHEMA)
        for broken in ({"for": None}, {"for": "5 minutes"}, {"severity_typo": "x"}, {"labels": {"severity": "page"}}):
            bad = {k: v for k, v in {**rule, **broken}.items() if v is not None}
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate({"groups": [{"name": "orderstatus.x", "rules": [bad]}]}, RULES_SCHEMA)

    @pytest.mark.parametrize(
        "condition, series, must_contain",
        [
            ("consumer lag growing", "orderstatus_consumer_lag", "deriv("),
            ("oldest unpublished outbox row older than N s", "orderstatus_outbox_oldest_unpublished_seconds", "> 60"),
            ("any parked row", "orderstatus_outbox_parked", "> 0"),
            ("dead-letter rate", "orderstatus_dead_letters_total", "rate("),
            ("in-doubt emails", "orderstatus_emails_total", 'outcome="in_doubt"'),
            ("process not ready", "orderstatus_ready", "== 0"),
            ("process down", "up", "== 0"),
        ],
    )
    def test_required_condition_has_an_alert(self, condition, series, must_contain):
        """Each condition the operations issue asks for is watched by an alert on the right series."""
        matching = [r for r in alert_rules() if series in series_names(r["expr"]) and must_contain in r["expr"]]
        assert matching, f"no alert for {condition}"

    def test_process_down_names_the_shipped_scrape_jobs(self):
        """The `up` alert's job matcher matches exactly the scrape jobs of prometheus-scrape.yaml, one per service."""
        down = next(r for r in alert_rules() if r["alert"] == "OrderstatusProcessDown")
        selectors = []
        promql_parser.walk(parse(down["expr"]), lambda n: selectors.append(n) if isinstance(n, promql_parser.VectorSelector) else None)
        (job,) = [m for s in selectors for m in s.matchers.matchers if m.name == "job"]
        jobs = [c["job_name"] for c in SCRAPE["scrape_configs"]]
        assert sorted(jobs) == sorted(f"orderstatus-{s}" for s in SERVICES)
        assert all(re.fullmatch(job.value, j) for j in jobs)
        for config in SCRAPE["scrape_configs"]:
            service = config["job_name"].removeprefix("orderstatus-")
            keep = next(r for r in config["relabel_configs"] if r.get("action") == "keep")
            assert keep["regex"] == f"orderstatus;{service};http"


class TestDashboard:
    def test_dashboard_structure(self):
        """The dashboard matches the schema: panels with ids, gridPos, a Prometheus datasource ref and targets with expr."""
        jsonschema.validate(DASHBOARD, DASHBOARD_SCHEMA)

    def test_panel_ids_and_ref_ids_are_unique_and_the_grid_does_not_overlap(self):
        """Panel ids are unique, refIds are unique within a panel, and no two panels share a grid cell."""
        panels = DASHBOARD["panels"]
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids))
        cells: dict[tuple[int, int], int] = {}
        for p in panels:
            refs = [t["refId"] for t in p.get("targets", [])]
            assert len(refs) == len(set(refs)), p["title"]
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, p["title"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{p['title']} overlaps panel {cells[(x, y)]}"
                    cells[(x, y)] = p["id"]

    def test_schema_refuses_a_panel_without_a_datasource_or_expr(self):
        """The dashboard schema is strict enough to catch a target without expr or a panel with a foreign datasource."""
        good = json.loads(json.dumps(DASHBOARD))
        panel = next(p for p in good["panels"] if p["type"] != "row")
        del panel["targets"][0]["expr"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(good, DASHBOARD_SCHEMA)
        other = json.loads(json.dumps(DASHBOARD))
        next(p for p in other["panels"] if p["type"] != "row")["datasource"] = {"type": "loki", "uid": "x"}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(other, DASHBOARD_SCHEMA)

    @pytest.mark.parametrize(
        "topic, series, must_contain",
        [
            ("command throughput", "orderstatus_messages_total", 'service="worker"'),
            ("outcomes by reason", "orderstatus_rejections_total", "by (reason)"),
            ("consumer lag", "orderstatus_consumer_lag", "orderstatus_consumer_lag"),
            ("outbox backlog", "orderstatus_outbox_unpublished", "max("),
            ("outbox oldest-row age", "orderstatus_outbox_oldest_unpublished_seconds", "max("),
            ("parked rows", "orderstatus_outbox_parked", "max("),
            ("DLQ rate", "orderstatus_dead_letters_total", "rate("),
            ("end-to-end latency p50", "orderstatus_end_to_end_seconds_bucket", "histogram_quantile(0.5,"),
            ("end-to-end latency p99", "orderstatus_end_to_end_seconds_bucket", "histogram_quantile(0.99,"),
            ("emails by outcome", "orderstatus_emails_total", "by (outcome)"),
            ("readiness", "orderstatus_ready", "orderstatus_ready"),
        ],
    )
    def test_required_panel_exists(self, topic, series, must_contain):
        """Each panel the operations issue asks for is on the dashboard, querying the right series."""
        matching = [
            p["title"] for p, t in dashboard_targets()
            if series in series_names(t["expr"]) and must_contain in t["expr"]
        ]
        assert matching, f"no panel for {topic}"
