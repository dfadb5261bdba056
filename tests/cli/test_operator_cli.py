"""The operator CLI through its real entry point (`codeq …`) against a live `codeq serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.process

CODEQ = str(Path(sys.executable).parent / "codeq")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("cli") / "data")
    proc.start()
    yield proc
    proc.stop()


def codeq(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "CODEQ_BASE_URL": server.url,
        "CODEQ_PRODUCER_TOKEN": "dev-producer",
        "CODEQ_WORKER_TOKEN": "dev-worker",
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run([CODEQ, *args], capture_output=True, text=True, timeout=60, env=environ)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_task_lifecycle_and_dead_letter_tools(server: ServerProcess) -> None:
    created = as_json(
        codeq(
            server, "task", "create", "cli-render", "--payload", '{"n": 7}', "--max-attempts", "1", "--json"
        )
    )
    task_id = created["id"]
    assert created["payload"] == {"n": 7} and created["status"] == "PENDING"
    table = codeq(server, "task", "get", task_id)
    assert table.returncode == 0 and task_id in table.stdout and "PENDING" in table.stdout
    stats = as_json(codeq(server, "queue", "stats", "cli-render", "--json"))
    assert stats == {"command": "cli-render", "ready": 1, "delayed": 0, "inProgress": 0, "dlq": 0}
    [row] = [q for q in as_json(codeq(server, "queue", "list", "--json")) if q["command"] == "cli-render"]
    assert row["ready"] == 1 and row["inProgress"] == 0
    table = codeq(server, "queue", "list").stdout
    assert "cli-render" in table and "codeq:q:" not in table  # command names, never internal keys

    claimed = as_json(codeq(server, "task", "claim", "-c", "cli-render", "--json"))
    assert claimed["id"] == task_id and claimed["attempts"] == 1
    assert as_json(codeq(server, "task", "claim", "-c", "cli-render", "--json")) is None
    nacked = as_json(codeq(server, "task", "nack", task_id, "--reason", "broken", "--json"))
    assert nacked == {"taskId": task_id, "status": "dlq"}

    page = as_json(codeq(server, "dlq", "list", "cli-render", "--json"))
    assert [t["id"] for t in page["tasks"]] == [task_id] and page["tasks"][0]["error"] == "broken"
    listing = codeq(server, "dlq", "list", "cli-render")
    assert task_id in listing.stdout and "broken" in listing.stdout
    assert as_json(codeq(server, "dlq", "requeue", "cli-render", task_id, "--json"))["requeued"] == 1
    again = as_json(codeq(server, "task", "claim", "-c", "cli-render", "--json"))
    assert again["id"] == task_id and again["attempts"] == 1
    as_json(codeq(server, "task", "nack", task_id, "--json"))
    assert as_json(codeq(server, "dlq", "purge", "cli-render", "--all", "--yes", "--json"))["purged"] == 1
    gone = codeq(server, "task", "get", task_id)
    assert gone.returncode == 1 and "error (404)" in gone.stderr


def test_task_list_and_cancel(server: ServerProcess) -> None:
    ids = [as_json(codeq(server, "task", "create", "cli-cancel", "--json"))["id"] for _ in range(3)]
    page = as_json(codeq(server, "task", "list", "cli-cancel", "--state", "ready", "--limit", "2", "--json"))
    assert [t["id"] for t in page["tasks"]] == ids[::-1][:2] and page["nextCursor"]
    more = codeq(server, "task", "list", "cli-cancel", "--oldest", "--limit", "2")
    assert ids[0] in more.stdout and "more: --cursor" in more.stdout
    cancelled = codeq(server, "task", "cancel", ids[0])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    assert as_json(codeq(server, "task", "cancel", ids[0], "--json"))["status"] == "CANCELLED"
    gone = as_json(codeq(server, "task", "list", "cli-cancel", "--state", "cancelled", "--json"))
    assert [t["id"] for t in gone["tasks"]] == [ids[0]]
    bad = codeq(server, "task", "list", "cli-cancel", "--state", "running")
    assert bad.returncode != 0 and "state" in bad.stderr


def test_task_result(server: ServerProcess) -> None:
    task_id = as_json(codeq(server, "task", "create", "cli-result", "--json"))["id"]
    pending = codeq(server, "task", "result", task_id)
    assert pending.returncode == 1 and "result not found" in pending.stderr
    as_json(codeq(server, "task", "claim", "-c", "cli-result", "--json"))
    body = {"status": "COMPLETED", "result": {"answer": 42}}
    headers = {"Authorization": "Bearer dev-worker"}
    httpx.post(f"{server.url}/v1/codeq/tasks/{task_id}/result", json=body, headers=headers).raise_for_status()
    result = as_json(codeq(server, "task", "result", task_id, "--json"))
    assert result["status"] == "COMPLETED" and result["result"] == {"answer": 42}
    shown = codeq(server, "task", "result", task_id)
    assert "COMPLETED" in shown.stdout and "42" in shown.stdout


def test_errors_have_clear_messages_and_exit_codes(server: ServerProcess) -> None:
    no_token = codeq(server, "task", "get", "x", env={"CODEQ_PRODUCER_TOKEN": ""})
    assert no_token.returncode == 2 and "CODEQ_PRODUCER_TOKEN" in no_token.stderr
    bad_json = codeq(server, "task", "create", "x", "--payload", "{nope")
    assert bad_json.returncode == 2 and "--payload is not valid JSON" in bad_json.stderr
    refused = codeq(server, "task", "create", "x", "--priority", "12")
    assert refused.returncode == 1 and "error (400)" in refused.stderr and "priority" in refused.stderr
    worker_as_admin = codeq(server, "queue", "list", "--token", "dev-worker")
    assert worker_as_admin.returncode == 1 and "error (401)" in worker_as_admin.stderr
    naive = codeq(server, "task", "create", "x", "--run-at", "2030-01-01T00:00:00")
    assert naive.returncode == 2 and "time zone" in naive.stderr
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = as_json(codeq(server, "task", "create", "cli-later", "--run-at", soon, "--json"))
    assert as_json(codeq(server, "queue", "stats", "cli-later", "--json"))["delayed"] == 1 and later["id"]
    both = codeq(server, "dlq", "requeue", "x", "some-id", "--all")
    assert both.returncode == 2 and "not both" in both.stderr
    down = codeq(server, "queue", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3 and "server unavailable" in down.stderr


def test_topic_put_get_delete(server: ServerProcess) -> None:
    put = as_json(codeq(server, "topic", "put", "orders", "--priority-tiers", "5,0", "--max-attempts", "3",
                        "--dead-letter-topic-ref", "orders-dlq", "--json"))  # fmt: skip
    assert put["topicId"] == "dev.orders" and put["version"] == 1
    assert put["policy"]["priorityTiers"] == [0, 5] and put["policy"]["maxAttempts"] == 3
    policy = '{"priorityTiers": [1], "maxAttempts": 4, "deadLetterTopicRef": "orders-dlq"}'
    assert as_json(codeq(server, "topic", "put", "orders", "--policy", policy, "--json"))["version"] == 2
    shown = codeq(server, "topic", "get", "orders")
    assert shown.returncode == 0 and "dev.orders" in shown.stdout and "orders-dlq" in shown.stdout
    invalid = codeq(server, "topic", "put", "orders", "--max-attempts", "0")
    assert invalid.returncode == 1 and "error (422)" in invalid.stderr
    assert as_json(codeq(server, "topic", "delete", "orders", "--json")) == {
        "topic": "orders",
        "deleted": True,
    }
    missing = codeq(server, "topic", "get", "orders")
    assert missing.returncode == 1 and "error (404)" in missing.stderr


def test_blocking_admin_sdk(server: ServerProcess) -> None:
    from codeq.client import Admin, Producer

    with Producer(server.url, "dev-producer") as producer, Admin(server.url, "dev-producer") as admin:
        ids = [producer.create("sdk-dlq", {"n": n}, max_attempts=1).id for n in range(3)]
        with httpx.Client(
            base_url=server.url + "/v1/codeq", headers={"Authorization": "Bearer dev-worker"}
        ) as w:
            for _ in ids:
                claimed = w.post("/tasks/claim", json={"commands": ["sdk-dlq"]}).json()
                assert w.post(f"/tasks/{claimed['id']}/nack", json={"reason": "x"}).json()["status"] == "dlq"
        assert admin.queue_stats("sdk-dlq").dlq == 3
        first = admin.dlq_list("sdk-dlq", limit=2)
        rest = admin.dlq_list("sdk-dlq", limit=2, after=first.next_after)
        assert [t.id for t in first.tasks + rest.tasks] == sorted(ids) and rest.next_after == ""
        assert admin.dlq_requeue("sdk-dlq", [ids[0]]) == 1
        assert producer.get(ids[0]).status == "PENDING"
        assert admin.dlq_purge("sdk-dlq", all=True) == 2
        assert admin.queue_stats("sdk-dlq").dlq == 0
        # The requeued task, finished, is past any retention by 2100: cleanup removes it.
        with httpx.Client(
            base_url=server.url + "/v1/codeq", headers={"Authorization": "Bearer dev-worker"}
        ) as w:
            assert w.post("/tasks/claim", json={"commands": ["sdk-dlq"]}).json()["id"] == ids[0]
            w.post(f"/tasks/{ids[0]}/result", json={"status": "COMPLETED", "result": {}}).raise_for_status()
        assert admin.cleanup(limit=1, before="2100-01-01T00:00:00Z") == 1


def test_task_nack_presents_the_lease_token_of_the_claim(server: ServerProcess) -> None:
    task_id = as_json(codeq(server, "task", "create", "cli-fenced", "--max-attempts", "5", "--json"))["id"]
    as_worker = ("--worker-id", "cli-a")
    first = as_json(codeq(server, "task", "claim", "-c", "cli-fenced", *as_worker, "--json"))
    assert first["id"] == task_id and first["leaseToken"] > 0
    assert "lease_token" in codeq(server, "task", "get", task_id).stdout
    token = str(first["leaseToken"])
    args = ("task", "nack", task_id, "--delay-seconds", "0", *as_worker, "--json")
    assert as_json(codeq(server, *args, "--lease-token", token)) == {"taskId": task_id, "status": "requeued"}
    second = as_json(codeq(server, "task", "claim", "-c", "cli-fenced", *as_worker, "--json"))
    assert second["leaseToken"] > first["leaseToken"]
    stale = codeq(server, *args, "--lease-token", token)  # the first claim's lease is over
    assert stale.returncode == 1 and "not-owner" in stale.stderr
    other = codeq(server, "task", "nack", task_id, "--lease-token", str(second["leaseToken"]), "--json")
    assert other.returncode == 1 and "not-owner" in other.stderr  # the token's subject is not cli-a
    assert as_json(codeq(server, *args, "--lease-token", str(second["leaseToken"])))["status"] == "requeued"
