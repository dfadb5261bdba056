"""`codeq serve --shards N --shard-processes`: a supervisor and one process per shard on the
same ports (ADR 0009)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeq.engine.shards import shard_of
from codeq.wire.http import SHARD_PROCESS_HEADER, TASK_PROCESS_HEADER
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.process

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", args=["--shards", "2", "--shard-processes"])
    proc.start()
    yield proc
    proc.stop()


def shard_processes(node: ServerProcess) -> list[int]:
    assert node.proc is not None
    pid = node.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def create(client: httpx.Client, command: str) -> str:
    reply = client.post("/v1/codeq/tasks", json={"command": command, "payload": {}}, headers=PRODUCER)
    assert reply.status_code == 202, reply.text
    task_id: str = reply.json()["id"]
    return task_id


def pinned_clients(node: ServerProcess) -> dict[int, httpx.Client]:
    """One keep-alive connection to each shard process: a create says which one served it
    (without an idempotency key, a process draws ids that route to its own shard)."""
    found: dict[int, httpx.Client] = {}
    for _ in range(200):
        client = httpx.Client(base_url=node.url, limits=httpx.Limits(max_connections=1), timeout=30)
        shard = shard_of(create(client, "probe"), 2)
        if shard in found:
            client.close()
        else:
            found[shard] = client
        if len(found) == 2:
            return found
    raise AssertionError("the kernel never spread connections over both processes")


def test_the_supervisor_runs_one_process_per_shard_on_one_port(node: ServerProcess) -> None:
    assert len(shard_processes(node)) == 2
    clients = pinned_clients(node)
    try:
        for shard, client in clients.items():  # every create of a connection lands on its process's shard
            assert {shard_of(create(client, "own"), 2) for _ in range(10)} == {shard}
    finally:
        for client in clients.values():
            client.close()


def test_every_response_names_the_shard_process_that_answered(node: ServerProcess) -> None:
    clients = pinned_clients(node)
    try:
        for shard, client in clients.items():
            claim = client.post("/v1/codeq/tasks/claim", json={}, headers=WORKER)
            for reply in (client.get("/healthz"), claim):
                assert reply.headers[SHARD_PROCESS_HEADER] == str(shard)
            # A claim taken from another process's shard names that process too, and only then.
            owner = shard_of(claim.json()["id"], 2)
            assert claim.headers.get(TASK_PROCESS_HEADER) == (None if owner == shard else str(owner))
    finally:
        for client in clients.values():
            client.close()


def test_a_long_poll_on_one_process_is_answered_by_a_create_on_the_other(node: ServerProcess) -> None:
    clients = pinned_clients(node)
    try:
        answer: list[httpx.Response] = []
        body = {"commands": ["crossing"], "leaseSeconds": 60, "waitSeconds": 20}
        waiting = threading.Thread(
            target=lambda: answer.append(clients[0].post("/v1/codeq/tasks/claim", json=body, headers=WORKER))
        )
        waiting.start()
        wait_for_metric(node, 'codeq_long_polls_waiting{shard_process="0"} 1.0')
        task_id = create(clients[1], "crossing")
        assert shard_of(task_id, 2) == 1
        waiting.join(25)
        assert answer and answer[0].status_code == 200, answer
        assert answer[0].json()["id"] == task_id
        # Answered by the first process from the second's shard: the reply names the owner.
        assert answer[0].headers[SHARD_PROCESS_HEADER] == "0"
        assert answer[0].headers[TASK_PROCESS_HEADER] == "1"
        # The result, posted on the first process, finishes the task on the second; both read it.
        reply = clients[0].post(
            f"/v1/codeq/tasks/{task_id}/result",
            json={"status": "COMPLETED", "result": {"n": 1}},
            headers=WORKER,
        )
        assert reply.status_code == 200, reply.text
        for client in clients.values():
            assert client.get(f"/v1/codeq/tasks/{task_id}", headers=PRODUCER).json()["status"] == "COMPLETED"
        stats = clients[0].get("/v1/codeq/admin/queues/probe", headers=PRODUCER).json()
        assert stats["ready"] >= 2  # the probes of both shards, counted over both processes
    finally:
        for client in clients.values():
            client.close()


def test_admin_reads_on_either_process_cover_both_shards(node: ServerProcess) -> None:
    clients = pinned_clients(node)  # one probe task on each shard
    try:
        for client in clients.values():
            for _ in range(3):
                create(client, "listed")
        for client in clients.values():
            listed = client.get(
                "/v1/codeq/admin/queues/listed/tasks", params={"state": "ready"}, headers=PRODUCER
            )
            assert listed.status_code == 200, listed.text
            assert {shard_of(t["id"], 2) for t in listed.json()["tasks"]} == {0, 1}
            assert len(listed.json()["tasks"]) == 6
            [row] = [
                r
                for r in client.get("/v1/codeq/admin/overview", headers=PRODUCER).json()["queues"]
                if r["command"] == "listed"
            ]
            assert row["ready"] == 6
            labels = client.get("/v1/codeq/admin/queues", headers=PRODUCER).json()
            assert sum(v for k, v in labels.items() if ":listed:" in k) == 6
            dlq = client.get("/v1/codeq/admin/dlq/listed", headers=PRODUCER)
            assert dlq.status_code == 200 and dlq.json()["tasks"] == []
        # The topic catalogue lives on shard 0: written and read through shard 1's process too.
        put = clients[1].put(
            "/v1/codeq/admin/topics/orders",
            json={"priorityTiers": [0], "maxAttempts": 3, "deadLetterTopicRef": "orders-dlq"},
            headers=PRODUCER,
        )
        assert put.status_code in (200, 201), put.text
        for client in clients.values():
            assert client.get("/v1/codeq/admin/topics/orders", headers=PRODUCER).status_code == 200
    finally:
        for client in clients.values():
            client.close()


def wait_for_metric(node: ServerProcess, sample: str) -> None:
    deadline = time.monotonic() + 20
    while sample not in (page := httpx.get(f"{node.url}/metrics").text):
        assert time.monotonic() < deadline, f"{sample} never appeared: {page}"
        time.sleep(0.1)  # the page is rendered at most once a second


def test_the_metrics_page_covers_every_shard_process(node: ServerProcess) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = httpx.get(f"{node.url}/metrics").text
        if 'codeq_ready{shard_process="0"}' in page and 'codeq_ready{shard_process="1"}' in page:
            assert 'codeq_shard_commands_total{shard_process="1",route="forwarded"}' in page
            return
        time.sleep(0.2)  # a page is rendered at most once a second
    raise AssertionError(f"a shard process is missing from /metrics: {page}")


def test_the_death_of_a_shard_process_stops_the_node_non_zero(node: ServerProcess) -> None:
    assert node.proc is not None
    victim, survivor = shard_processes(node)
    os.kill(victim, signal.SIGKILL)
    assert node.proc.wait(30) == 1
    assert "exited (-9); stopping the node" in node.log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(survivor, 0)


def test_shard_processes_share_the_node_session_in_groups_of_their_own(node: ServerProcess) -> None:
    """One session (the kernel's autogroup schedules the node as one program), but each shard
    process in a process group of its own, so a terminal's Ctrl-C reaches the supervisor alone."""
    assert node.proc is not None
    supervisor = node.proc.pid
    children = shard_processes(node)
    assert {os.getsid(child) for child in children} == {os.getsid(supervisor)}
    assert [os.getpgid(child) for child in children] == children
    assert os.getpgid(supervisor) not in children


def test_sigterm_stops_every_shard_process_cleanly(node: ServerProcess) -> None:
    children = shard_processes(node)
    assert node.terminate() == 0
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


def test_a_killed_supervisor_takes_its_shard_processes_with_it(node: ServerProcess) -> None:
    children = shard_processes(node)
    node.kill()
    deadline = time.monotonic() + 20
    alive = set(children)
    while alive and time.monotonic() < deadline:
        for child in list(alive):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                alive.discard(child)
        time.sleep(0.05)  # waiting for real processes to exit
    assert not alive, "shard processes outlived their supervisor"


def test_port_zero_and_a_metrics_listener_serve_every_shard_process(tmp_path: Path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    node = ServerProcess(
        tmp_path / "data",
        args=["--shards", "2", "--shard-processes", "--port", "0"],
        env={"METRICS_ADDR": metrics},
    )
    node.launch()
    try:
        deadline = time.monotonic() + 30
        while not (serving := re.search(r"codeq serving on http://127\.0\.0\.1:(\d+)", node.log.read_text())):
            assert time.monotonic() < deadline, node.log.read_text()
            time.sleep(0.1)  # waiting for a real process to announce its port
        node.port = int(serving.group(1))  # one port, chosen by the supervisor, shared by both
        node.wait_ready()
        for client in pinned_clients(node).values():  # both processes serve it
            client.close()
        assert httpx.get(f"{node.url}/metrics").status_code == 404  # metrics moved to their listener
        while True:  # shard 0's process serves the merged page; the peer's part within a second
            page = httpx.get(f"http://{metrics}/metrics").text
            if 'codeq_ready{shard_process="0"}' in page and 'codeq_ready{shard_process="1"}' in page:
                break
            assert time.monotonic() < deadline + 20, page
            time.sleep(0.2)
    finally:
        node.stop()
