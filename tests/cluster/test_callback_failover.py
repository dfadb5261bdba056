"""Under Raft only the leader sends callbacks and notifications; a failover resumes a pending callback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.cluster.support import PRODUCER, WORKER, Cluster, until
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

ENV = {
    "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "RESULT_WEBHOOK_BASE_BACKOFF_SECONDS": "1",
    "RESULT_WEBHOOK_MAX_BACKOFF_SECONDS": "1",
    "RESULT_WEBHOOK_MAX_ATTEMPTS": "100",
}


def _finish(cluster: Cluster, leader: str, webhook: str) -> str:
    base = f"{cluster.url(leader)}/v1/codeq"
    body = {"command": "render", "payload": {}, "webhook": webhook}
    task_id: str = httpx.post(f"{base}/tasks", json=body, headers=PRODUCER).json()["id"]
    assert httpx.post(f"{base}/tasks/claim", json={}, headers=WORKER).json()["id"] == task_id
    result = {"status": "COMPLETED", "result": {"ok": 1}}
    assert httpx.post(f"{base}/tasks/{task_id}/result", json=result, headers=WORKER).status_code == 200
    return task_id


def _metric(cluster: Cluster, node: str, name: str) -> float:
    text = httpx.get(f"{cluster.url(node)}/metrics").text
    values = [float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values)


def test_only_the_leader_calls_out_and_a_failover_resumes_a_pending_callback(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, env=ENV)
    with Receiver() as receiver:
        try:
            cluster.start()
            leader = cluster.wait_leader()
            subscription = {"callbackUrl": receiver.url + "/ready", "eventTypes": ["render"]}
            created = httpx.post(
                f"{cluster.url(leader)}/v1/codeq/workers/subscriptions", json=subscription, headers=WORKER
            )
            assert created.status_code == 200, created.text
            first = _finish(cluster, leader, receiver.url + "/one")
            receiver.wait_until(lambda: any(r.path == "/one" for r in receiver.received))
            receiver.wait_until(lambda: any(r.path == "/ready" for r in receiver.received))
            # Every replica applied the delivery's outcome and saw the create; only the leader
            # attempted the callback and sent the notification.
            for node in cluster.ids:
                until(lambda n=node: _metric(cluster, n, "codeq_webhook_outbox_pending") == 0)
                attempts = _metric(cluster, node, "codeq_webhook_attempts_total")
                assert attempts == (2 if node == leader else 0), node  # the callback + the notification
            one = [r for r in receiver.received if r.path == "/one"]
            assert len(one) == 1 and json.loads(one[0].body)["taskId"] == first
            assert [r.path for r in receiver.received].count("/ready") == 1

            receiver.default = 500
            second = _finish(cluster, leader, receiver.url + "/two")
            receiver.wait_until(lambda: any(r.path == "/two" for r in receiver.received))
            cluster.nodes[leader].kill()  # the callback is still owed
            receiver.default = 200
            others = [i for i in cluster.ids if i != leader]
            cluster.wait_leader(among=others)
            receiver.wait_until(lambda: any(r.path == "/two" and r.status == 200 for r in receiver.received))
            delivered = [r for r in receiver.answered(200) if r.path == "/two"]
            assert len(delivered) == 1 and json.loads(delivered[0].body)["taskId"] == second
        finally:
            cluster.stop()
