"""Topics under Raft: a PUT on the leader is a replicated command, readable on every node;
a write sent to a follower is redirected to the leader."""

from __future__ import annotations

import httpx
import pytest

from tests.cluster.support import PRODUCER, Cluster, until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

POLICY = {"priorityTiers": [2, 0], "maxAttempts": 4, "deadLetterTopicRef": "orders-dlq"}


def topic_on(cluster: Cluster, node: str) -> dict[str, object] | None:
    r = httpx.get(f"{cluster.url(node)}/v1/codeq/admin/topics/orders", headers=PRODUCER, timeout=5)
    return r.json() if r.status_code == 200 else None


def test_topic_writes_replicate_and_redirect(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = next(i for i in cluster.ids if i != leader)
    url = f"{cluster.url(leader)}/v1/codeq/admin/topics/orders"
    created = httpx.put(url, json=POLICY, headers=PRODUCER, timeout=10)
    assert created.status_code == 201, created.text
    until(lambda: all(topic_on(cluster, i) == created.json() for i in cluster.ids), what="topic everywhere")

    moved = httpx.put(
        f"{cluster.url(follower)}/v1/codeq/admin/topics/orders",
        json={**POLICY, "maxAttempts": 5},
        headers=PRODUCER,
        timeout=10,
    )
    assert moved.status_code == 307 and moved.headers["location"] == url
    updated = httpx.put(moved.headers["location"], json={**POLICY, "maxAttempts": 5}, headers=PRODUCER)
    assert updated.status_code == 200 and updated.json()["version"] == 2
    until(lambda: all((topic_on(cluster, i) or {}).get("version") == 2 for i in cluster.ids), what="v2")

    gone = httpx.delete(f"{url}?deletionPolicy=Delete", headers=PRODUCER, timeout=10)
    assert gone.status_code == 204
    until(lambda: all(topic_on(cluster, i) is None for i in cluster.ids), what="deleted everywhere")
