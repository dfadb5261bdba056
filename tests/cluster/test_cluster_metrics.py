"""`/metrics` of a three-node Raft cluster after a short load: requests, Raft and commit metrics."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.cluster.support import WORKER, Cluster, until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]


def value(text: str, series: str) -> float:
    """The sample of one exact series, or of the series whose name and labels start so."""
    match = re.search(rf"^{re.escape(series)}[^\n]* ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match is not None, f"{series} not exported"
    return float(match.group(1))


def test_metrics_after_a_short_load_show_requests_raft_and_commits(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = next(i for i in cluster.ids if i != leader)
    ids = [cluster.create(leader, {"command": "render", "payload": {"i": i}}).json()["id"] for i in range(20)]
    base = cluster.url(leader)
    claimed = httpx.post(f"{base}/v1/codeq/tasks/claim", json={}, headers=WORKER, timeout=10).json()
    done = httpx.post(
        f"{base}/v1/codeq/tasks/{claimed['id']}/result",
        json={"status": "COMPLETED", "result": {}},
        headers=WORKER,
        timeout=10,
    )
    assert done.status_code == 200, done.text
    until(lambda: all(cluster.has_task(follower, task_id) for task_id in ids[-1:]), what="replication")

    led = httpx.get(f"{base}/metrics", timeout=10).text
    assert value(led, 'codeq_http_requests_total{method="POST",route="/v1/codeq/tasks",status="202"}') == 20
    assert value(led, 'codeq_raft_is_leader{group="0"}') == 1
    assert value(led, 'codeq_raft_has_leader{group="0"}') == 1
    assert value(led, 'codeq_raft_term{group="0"}') >= 1
    assert value(led, 'codeq_raft_commit_latency_seconds_count{group="0"}') >= 1
    assert value(led, 'codeq_raft_entry_commands_sum{group="0"}') >= 22
    assert value(led, 'codeq_commit_batch_size_count{shard="0"}') >= 1
    assert value(led, 'codeq_commit_latency_seconds_count{shard="0"}') >= 1
    assert value(led, "codeq_ready") == 1

    followed = httpx.get(f"{cluster.url(follower)}/metrics", timeout=10).text
    assert value(followed, 'codeq_raft_is_leader{group="0"}') == 0
    assert value(followed, 'codeq_raft_has_leader{group="0"}') == 1
    assert value(followed, 'codeq_raft_apply_latency_seconds_count{group="0"}') >= 1
    assert value(followed, 'codeq_raft_applied_index{group="0"}') >= 1
