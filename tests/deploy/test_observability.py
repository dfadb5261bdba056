"""The Grafana dashboard, Prometheus config and alert rules: well formed, and every codeq metric real."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from prometheus_client.core import Metric

from codeq.observability.metrics import Metrics, RaftGroupState
from tests.deploy.support import DEPLOY

METRIC_NAME = re.compile(r"\bcodeq_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> frozenset[str]:
    """Every series name `/metrics` can carry, from a `Metrics` with all its gauges registered."""
    metrics = Metrics()
    metrics.register_waiting(lambda: 0)
    metrics.register_outbox_pending(lambda: 0)
    metrics.register_queue_depth(lambda: [])
    metrics.register_ready(lambda: True)
    metrics.register_raft(lambda: [RaftGroupState("0", True, True, 1, 1, 1, 0)])
    families: Iterator[Metric] = metrics.registry.collect()
    return frozenset(f"{f.name}{suffix}" for f in families for suffix in SUFFIXES[f.type])


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "codeq.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_exported_names_are_collected() -> None:
    """Guards the next tests against an empty list that every name would trivially fail."""
    names = exported_names()
    assert {"codeq_task_created_total", "codeq_commit_latency_seconds_bucket", "codeq_queue_depth"} <= names


def test_every_dashboard_metric_is_exported() -> None:
    exprs = dashboard_exprs()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert len(exprs) >= 10 and used
    assert not used - exported_names(), sorted(used - exported_names())


def test_every_alert_metric_is_exported_and_every_rule_is_complete() -> None:
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["alert"] and rule["expr"] and rule["labels"]["severity"] in ("warning", "critical")
        assert "summary" in rule["annotations"]
    used = {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])}
    assert not used - exported_names(), sorted(used - exported_names())


def test_the_alerts_cover_dead_letters_commit_latency_and_a_down_node() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    assert 'queue="dlq"' in exprs
    assert "codeq_commit_latency_seconds_bucket" in exprs
    assert 'up{job="codeq"}' in exprs


def test_the_alerts_cover_no_leader_apply_lag_and_readiness() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for name in ("codeq_raft_has_leader", "codeq_raft_apply_queue_depth", "codeq_ready"):
        assert name in exprs, name


def test_the_dashboard_shows_raft_readiness_and_grpc() -> None:
    exprs = " ".join(dashboard_exprs())
    for name in ("codeq_raft_is_leader", "codeq_raft_commit_latency_seconds", "codeq_ready", "codeq_grpc_"):
        assert name in exprs, name


def test_prometheus_scrapes_the_http_port_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "codeq" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["codeq:8080"]


def test_grafana_provisions_the_datasource_the_dashboard_names() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in datasources["datasources"]}
    dashboard = json.loads((DEPLOY / "grafana" / "codeq.json").read_text())
    named = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert named == uids == {"prometheus"}
    providers = yaml.safe_load((provisioning / "dashboards" / "codeq.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
