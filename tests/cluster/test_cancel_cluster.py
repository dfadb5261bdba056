"""Cancel under Raft (issue 14): a replicated command, so every replica agrees on the outcome,
a follower redirects it, and a new leader after the old one's death keeps it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cluster.support import PRODUCER, WORKER, Cluster, until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]


def task_on(cluster: Cluster, node: str, task_id: str) -> dict[str, Any] | None:
    try:
        r = httpx.get(f"{cluster.url(node)}/v1/codeq/tasks/{task_id}", headers=PRODUCER, timeout=5)
    except httpx.TransportError:
        return None
    return r.json() if r.status_code == 200 else None


def listed_on(cluster: Cluster, node: str, state: str) -> list[str]:
    url = f"{cluster.url(node)}/v1/codeq/admin/queues/render/tasks"
    r = httpx.get(url, params={"state": state}, headers=PRODUCER, timeout=5)
    return [task["id"] for task in r.json()["tasks"]] if r.status_code == 200 else []


def test_cancel_replicates_redirects_and_survives_a_leader_change(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = next(i for i in cluster.ids if i != leader)
    waiting = cluster.create(leader, {"command": "render", "payload": {}}).json()["id"]
    leased = cluster.create(leader, {"command": "render", "payload": {}}).json()["id"]
    base = f"{cluster.url(leader)}/v1/codeq"
    claimed = httpx.post(f"{base}/tasks/claim", json={"commands": ["render"]}, headers=WORKER, timeout=10)
    assert claimed.status_code == 200 and claimed.json()["id"] == waiting  # oldest first
    waiting, leased = leased, waiting  # the unclaimed one waits; the claimed one is leased

    moved = httpx.post(f"{cluster.url(follower)}/v1/codeq/tasks/{waiting}/cancel", headers=PRODUCER)
    assert moved.status_code == 307 and moved.headers["location"] == f"{base}/tasks/{waiting}/cancel"
    done = httpx.post(moved.headers["location"], headers=PRODUCER, timeout=10)
    assert done.status_code == 200 and done.json()["status"] == "CANCELLED"
    marked = httpx.post(f"{base}/tasks/{leased}/cancel", headers=PRODUCER, timeout=10)
    assert marked.status_code == 200 and marked.json()["cancelRequested"] is True

    def everywhere() -> bool:
        return all(
            (task_on(cluster, i, waiting) or {}).get("status") == "CANCELLED"
            and (task_on(cluster, i, leased) or {}).get("cancelRequested") is True
            and listed_on(cluster, i, "cancelled") == [waiting]
            for i in cluster.ids
        )

    until(everywhere, what="the cancel on every replica")

    beat = httpx.post(f"{base}/tasks/{leased}/heartbeat", json={}, headers=WORKER, timeout=10)
    assert beat.status_code == 409 and beat.json() == {"error": "task cancelled"}
    until(
        lambda: all(
            sorted(listed_on(cluster, i, "cancelled")) == sorted([waiting, leased]) for i in cluster.ids
        ),
        what="the worker's cancel on every replica",
    )

    cluster.nodes[leader].kill()
    new_leader = cluster.wait_leader(among=[i for i in cluster.ids if i != leader])
    new_base = f"{cluster.url(new_leader)}/v1/codeq"
    for task_id in (waiting, leased):
        again = httpx.post(f"{new_base}/tasks/{task_id}/cancel", headers=PRODUCER, timeout=10)
        assert again.status_code == 200 and again.json()["status"] == "CANCELLED"  # idempotent
    nothing = httpx.post(f"{new_base}/tasks/claim", json={"commands": ["render"]}, headers=WORKER, timeout=10)
    assert nothing.status_code == 204
    overview = httpx.get(f"{new_base}/admin/overview", headers=PRODUCER, timeout=10).json()
    [row] = overview["queues"]
    assert (row["ready"], row["inProgress"]) == (0, 0)
