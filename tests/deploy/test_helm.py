"""The Helm chart: rendered offline for each mode, checked against the Kubernetes schemas, and the
environment each pod would get loaded by codeq's own configuration code."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from codeq.config import load_settings
from tests.deploy.support import DEPLOY, server_env_names

CHART = DEPLOY / "helm" / "codeq"
KUBERNETES = "1.30.0"
NAMESPACE = "queues"
AUTH = {
    "producer": {"provider": "static", "config": {"token": "chart-producer"}},
    "worker": {"provider": "static", "config": {"token": "chart-worker"}},
    "allowStaticTokens": True,
}
SINGLE = {"auth": AUTH}
RAFT = {
    "mode": "raft",
    "auth": AUTH,
    "raft": {"secret": "chart-raft-secret-of-at-least-32-characters"},
    "persistence": {"numShards": 3},
    "serviceMonitor": {"enabled": True},
}
# Secrets made outside the chart: the chart must then render none and refer to these.
RAFT_EXISTING = {
    "mode": "raft",
    "auth": {**AUTH, "existingSecret": "codeq-auth"},
    "raft": {"existingSecret": "codeq-raft", "existingSecretKey": "secret"},
}
# Only the Prometheus Operator's kind has no schema in kubernetes-validate.
NO_SCHEMA = {"ServiceMonitor"}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    manifests = chart.render(values, name="demo", namespace=NAMESPACE, is_install=True)
    docs = [
        doc
        for path, text in sorted(manifests.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (workload,) = by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet")
    (main,) = workload["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = main
    return result


def pod_env(docs: list[dict[str, Any]], pod: str, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment the kubelet would give pod `pod`: field and secret references resolved."""
    env: dict[str, str] = {}
    for entry in container(docs)["env"]:
        source = entry.get("valueFrom")
        if source is None:
            env[entry["name"]] = entry["value"]
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name"
            env[entry["name"]] = pod
        else:
            ref = source["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def rendered_secrets(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["stringData"] for doc in by_kind(docs, "Secret")}


def test_the_chart_lints_clean_in_strict_mode() -> None:
    for values in (SINGLE, RAFT):
        report = helm.lint(CHART, values, strict=True)
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [SINGLE, RAFT, RAFT_EXISTING], ids=["single", "raft", "raft-existing"])
def test_every_manifest_matches_the_kubernetes_schema(values: dict[str, Any]) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        if doc["kind"] in NO_SCHEMA:
            with pytest.raises(SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        else:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    """Guards the test above: a misspelt field is an error under strict validation."""
    (deployment,) = by_kind(render(SINGLE), "Deployment")
    deployment["spec"]["replicaz"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_single_mode_is_one_pod_on_a_persistent_volume() -> None:
    docs = render(SINGLE)
    assert sorted(doc["kind"] for doc in docs) == ["Deployment", "PersistentVolumeClaim", "Secret", "Service"]
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    (pvc,) = by_kind(docs, "PersistentVolumeClaim")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}} in volumes


def test_probes_resources_and_a_non_root_pod() -> None:
    for values in (SINGLE, RAFT):
        main = container(render(values))
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["resources"]["requests"] and main["resources"]["limits"]
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"name": "data", "mountPath": "/var/lib/codeq"} in main["volumeMounts"]


def test_raft_mode_is_a_statefulset_of_three_with_stable_peer_names() -> None:
    docs = render(RAFT)
    (sts,) = by_kind(docs, "StatefulSet")
    headless = next(s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") == "None")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["spec"]["ports"]} >= {7000, 7001, 7002}
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    suffix = f"{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert env["RAFT_PEERS"] == ",".join(f"demo-codeq-{i}=demo-codeq-{i}.{suffix}:7000" for i in range(3))
    assert env["RAFT_PEER_HTTP_ADDRS"].split(",")[0] == f"demo-codeq-0=http://demo-codeq-0.{suffix}:8080"
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]


def test_the_raft_secret_comes_from_a_secret_never_a_plain_value() -> None:
    for values, name, key in ((RAFT, "demo-codeq", "RAFT_SECRET"), (RAFT_EXISTING, "codeq-raft", "secret")):
        docs = render(values)
        (entry,) = [e for e in container(docs)["env"] if e["name"] == "RAFT_SECRET"]
        assert entry["valueFrom"]["secretKeyRef"] == {"name": name, "key": key}
    assert by_kind(render(RAFT_EXISTING), "Secret") == []


def test_the_service_monitor_scrapes_metrics_on_the_http_port() -> None:
    (monitor,) = by_kind(render(RAFT), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert by_kind(render(SINGLE), "ServiceMonitor") == []


@pytest.mark.parametrize("values", [SINGLE, RAFT], ids=["single", "raft"])
def test_codeq_accepts_every_pods_environment(values: dict[str, Any]) -> None:
    docs = render(values)
    names = {entry["name"] for entry in container(docs)["env"]}
    assert not names - server_env_names(), sorted(names - server_env_names())
    replicas = 3 if values.get("mode") == "raft" else 1
    for i in range(replicas):
        pod = f"demo-codeq-{i}"
        settings = load_settings(environ=pod_env(docs, pod, rendered_secrets(docs)))
        assert settings.store.path == "/var/lib/codeq"
        assert settings.raft.enabled == (replicas == 3)
        if settings.raft.enabled:
            assert (
                settings.raft.self_id == pod
                and settings.raft.secret == "chart-raft-secret-of-at-least-32-characters"
            )
            assert settings.store.num_shards == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "auth.producer.provider"),
        ({"mode": "raft", "auth": AUTH}, "raft.secret"),
        ({"mode": "raft", "auth": AUTH, "raft": {"secret": "s", "replicas": 2}}, "odd"),
        ({"mode": "cluster", "auth": AUTH}, "mode must be single or raft"),
    ],
    ids=["no-auth", "no-raft-secret", "even-voters", "unknown-mode"],
)
def test_the_chart_refuses_values_the_server_would_refuse(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)
