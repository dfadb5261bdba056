"""SIGKILL under load: every acknowledged write survives, nothing is in two states."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}
# Short backoff so that tasks whose lease ran out are claimable again quickly after restart.
ENV = {"BACKOFF_POLICY": "fixed", "BACKOFF_BASE_SECONDS": "1"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", env=ENV)
    yield proc
    proc.stop()


class Load:
    """Producers and workers that record only what the server acknowledged."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.created: set[str] = set()
        self.completed: set[str] = set()
        self.stop = asyncio.Event()

    async def produce(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                r = await self.client.post(
                    "/v1/codeq/tasks", json={"command": "crash", "payload": {"p": n, "i": i}}
                )
            except httpx.TransportError:
                return
            if r.status_code == 202:
                self.created.add(r.json()["id"])

    async def work(self) -> None:
        while not self.stop.is_set():
            try:
                r = await self.client.post(
                    "/v1/codeq/tasks/claim", json={"commands": ["crash"], "leaseSeconds": 1}, headers=WORKER
                )
                if r.status_code != 200:
                    continue
                task_id = r.json()["id"]
                r = await self.client.post(
                    f"/v1/codeq/tasks/{task_id}/result",
                    json={"status": "COMPLETED", "result": {"ok": 1}},
                    headers=WORKER,
                )
            except httpx.TransportError:
                return
            if r.status_code == 200:
                self.completed.add(task_id)


async def _run_until_killed(server: ServerProcess, acknowledged: int) -> Load:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=server.url, headers=PRODUCER, limits=limits, timeout=10) as client:
        load = Load(client)
        jobs = [asyncio.ensure_future(load.produce(n)) for n in range(4)]
        jobs += [asyncio.ensure_future(load.work()) for _ in range(4)]
        while len(load.created) + len(load.completed) < acknowledged:
            await asyncio.sleep(0.01)
        server.kill()
        load.stop.set()
        await asyncio.gather(*jobs)
        return load


async def _drain(client: httpx.AsyncClient, expected_live: set[str]) -> set[str]:
    """Claim until nothing is left; fail on any task handed out twice."""
    claimed: set[str] = set()
    while True:
        r = await client.post(
            "/v1/codeq/tasks/claim",
            json={"commands": ["crash"], "leaseSeconds": 300, "waitSeconds": 5},
            headers=WORKER,
        )
        if r.status_code == 204:
            break
        assert r.status_code == 200, r.text
        task_id = r.json()["id"]
        assert task_id not in claimed, "a task was handed out twice"
        claimed.add(task_id)
        r = await client.post(
            f"/v1/codeq/tasks/{task_id}/result", json={"status": "COMPLETED", "result": {}}, headers=WORKER
        )
        assert r.status_code == 200
    assert expected_live <= claimed, f"{len(expected_live - claimed)} tasks never became claimable again"
    return claimed


async def test_acknowledged_writes_survive_sigkill(server: ServerProcess) -> None:
    await _survives_sigkill(server)


async def test_acknowledged_writes_survive_sigkill_with_a_process_per_shard(tmp_path: Path) -> None:
    """Four shard processes under a supervisor: SIGKILL of the supervisor ends every shard
    process at once (they read its pipe), and the restarted node has every acknowledged write."""
    server = ServerProcess(tmp_path / "data", args=["--shards", "4", "--shard-processes"], env=ENV)
    try:
        await _survives_sigkill(server)
    finally:
        server.stop()


async def _survives_sigkill(server: ServerProcess) -> None:
    server.start()
    load = await _run_until_killed(server, acknowledged=1500)
    assert load.created and load.completed

    server.start()
    async with httpx.AsyncClient(base_url=server.url, headers=PRODUCER, timeout=30) as client:
        statuses: dict[str, str] = {}
        for task_id in load.created | load.completed:
            r = await client.get(f"/v1/codeq/tasks/{task_id}")
            assert r.status_code == 200, f"acknowledged task {task_id} lost"
            statuses[task_id] = r.json()["status"]
        for task_id in load.completed:
            assert statuses[task_id] == "COMPLETED"
            r = await client.get(f"/v1/codeq/tasks/{task_id}/result")
            assert r.status_code == 200 and r.json()["result"]["status"] == "COMPLETED"

        live = {i for i, s in statuses.items() if s in ("PENDING", "IN_PROGRESS")}
        assert set(statuses.values()) <= {"PENDING", "IN_PROGRESS", "COMPLETED"}
        stats = (await client.get("/v1/codeq/admin/queues/crash")).json()
        # Unacknowledged creates may also have landed, so the store can hold more than we know.
        assert stats["ready"] + stats["delayed"] + stats["inProgress"] >= len(live)

        drained = await _drain(client, live)
        assert live <= drained
        stats = (await client.get("/v1/codeq/admin/queues/crash")).json()
        assert stats == {"command": "crash", "ready": 0, "delayed": 0, "inProgress": 0, "dlq": 0}
    assert server.terminate() == 0
