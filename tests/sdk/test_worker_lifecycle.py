"""Worker lifecycle against a live server: shutdown, signals, lease extension, server restarts."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from codeq.client import AsyncProducer, AsyncWorker, ConnectionFailed, Job, NotOwner, Result, Task
from codeq.client._http import HttpTransport
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import LiveServer, running, sdk_settings

WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}


async def _stop_mid_task(server: LiveServer, producer: AsyncProducer, *, by_signal: bool) -> None:
    worker = AsyncWorker(server.url, WORKER_TOKEN, concurrency=1)
    started, gate = asyncio.Event(), asyncio.Event()

    @worker.handler("render")
    async def render(job: Job) -> str:
        started.set()
        await gate.wait()
        return "finished"

    first = await producer.create("render", 1)
    run = asyncio.ensure_future(worker.run(handle_signals=True))
    await started.wait()
    # The only slot is busy, so no claim is outstanding: `second` can only be claimed if
    # the worker keeps claiming after it was told to stop.
    second = await producer.create("render", 2)
    if by_signal:
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        worker.stop()
    await worker.wait_until_stopping()
    gate.set()
    await asyncio.wait_for(run, 10)
    assert (await producer.result(first.id)).result == {"value": "finished"}
    untouched = await producer.get(second.id)
    assert untouched.status == "PENDING" and untouched.attempts == 0
    assert worker.stats.claimed == 1


async def test_stop_lets_the_running_handler_finish_and_claims_nothing_new(
    server: LiveServer, producer: AsyncProducer
) -> None:
    await _stop_mid_task(server, producer, by_signal=False)


async def test_sigterm_stops_gracefully_and_restores_the_signal_handler(
    server: LiveServer, producer: AsyncProducer
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    await _stop_mid_task(server, producer, by_signal=True)
    assert signal.getsignal(signal.SIGTERM) == before


async def test_handlers_past_the_shutdown_timeout_are_cancelled_and_handed_back(
    server: LiveServer, producer: AsyncProducer
) -> None:
    worker = AsyncWorker(server.url, WORKER_TOKEN, shutdown_timeout=0.2)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @worker.handler("stuck")
    async def stuck(job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = await producer.create("stuck", 1)
    async with running(worker):
        await started.wait()
    assert cancelled.is_set()
    back = await producer.get(task.id)
    assert back.status == "PENDING" and back.attempts == 0  # abandoned: the attempt is given back
    assert worker.stats.abandoned == 1


async def test_heartbeats_keep_a_long_handler_leased(server: LiveServer, producer: AsyncProducer) -> None:
    worker = AsyncWorker(server.url, WORKER_TOKEN, lease_seconds=2)
    started, gate = asyncio.Event(), asyncio.Event()

    @worker.handler("long")
    async def long(job: Job) -> str:
        started.set()
        await gate.wait()
        return "done"

    task = await producer.create("long", 1)
    async with running(worker), httpx.AsyncClient(base_url=f"{server.url}/v1/codeq", headers=WORKER) as http:
        await started.wait()
        # A rival long poll spans 3 s, past the 2 s lease: without heartbeats the lease
        # expires and the rival is handed the task.
        rival = await http.post("/tasks/claim", json={"commands": ["long"], "waitSeconds": 3}, timeout=10)
        assert rival.status_code == 204
        gate.set()
        result = await producer.result(task.id, wait=10)
    assert result.status == "COMPLETED" and result.result == {"value": "done"}
    assert worker.stats.ack_errors == 0 and (await producer.get(task.id)).attempts == 1


class WatchedTransport(HttpTransport):
    """The real HTTP transport, noting when a claim or a result found no server to talk to."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token)
        self.claim_failed = asyncio.Event()
        self.result_failed = asyncio.Event()

    async def claim(self, commands: Sequence[str], lease_seconds: int, wait_seconds: int) -> Task | None:
        try:
            return await super().claim(commands, lease_seconds, wait_seconds)
        except ConnectionFailed:
            self.claim_failed.set()
            raise

    async def submit_result(
        self, task_id: str, status: str, result: Any, error: str, lease_token: int = 0
    ) -> Result:
        try:
            return await super().submit_result(task_id, status, result, error, lease_token)
        except ConnectionFailed:
            self.result_failed.set()
            raise


async def test_the_worker_rides_out_a_server_restart(tmp_path: Path) -> None:
    server = LiveServer(sdk_settings(tmp_path / "data"))
    await server.start()
    transport = WatchedTransport(server.url, WORKER_TOKEN)
    worker = AsyncWorker(
        server.url, WORKER_TOKEN, concurrency=2, reconnect_max_seconds=0.2, transport=transport
    )
    started, gate = asyncio.Event(), asyncio.Event()

    @worker.handler("render")
    async def render(job: Job) -> object:
        if job.payload == "across":
            started.set()
            await gate.wait()
        return job.payload

    try:
        async with AsyncProducer(server.url, PRODUCER_TOKEN) as producer, running(worker):
            before = await producer.create("render", "before")
            assert (await producer.result(before.id, wait=10)).result == {"value": "before"}
            across = await producer.create("render", "across")
            await started.wait()
            await server.stop()
            await transport.claim_failed.wait()  # the idle slot keeps trying to claim
            gate.set()
            await transport.result_failed.wait()  # the finished handler's result is held back
            await server.start()  # same port, same RocksDB directory: the lease survived
            assert (await producer.result(across.id, wait=10)).result == {"value": "across"}
            after = await producer.create("render", "after")
            assert (await producer.result(after.id, wait=10)).result == {"value": "after"}
    finally:
        if server.app is not None:
            await server.stop()
        await transport.aclose()
    assert worker.stats.completed == 3 and worker.stats.ack_errors == 0
    assert worker.stats.connection_errors >= 1


class LeaseTakenTransport(HttpTransport):
    """The real HTTP transport, except that the server's answer to a heartbeat is `not-owner`
    (another worker holds the task now, e.g. after an operator requeued it)."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token)
        self.heartbeats = 0
        self.results = 0

    async def heartbeat(self, task_id: str, extend_seconds: int, lease_token: int = 0) -> None:
        self.heartbeats += 1
        raise NotOwner("task is leased by another worker", status=403)

    async def submit_result(
        self, task_id: str, status: str, result: Any, error: str, lease_token: int = 0
    ) -> Result:
        self.results += 1
        return await super().submit_result(task_id, status, result, error, lease_token)


async def test_a_lost_lease_cancels_the_handler_and_sends_nothing(
    server: LiveServer, producer: AsyncProducer
) -> None:
    transport = LeaseTakenTransport(server.url, WORKER_TOKEN)
    worker = AsyncWorker(server.url, WORKER_TOKEN, lease_seconds=2, transport=transport)
    started, cancelled = asyncio.Event(), asyncio.Event()
    lost: list[bool] = []

    @worker.handler("long")
    async def long(job: Job) -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            lost.append(job.lease_lost)
            cancelled.set()
            raise
        return "never"

    await producer.create("long", 1)
    try:
        async with running(worker):
            await started.wait()
            await asyncio.wait_for(cancelled.wait(), 10)  # the first heartbeat falls due after 1 s
    finally:
        await transport.aclose()
    assert lost == [True] and transport.heartbeats == 1
    assert transport.results == 0 and worker.stats.ack_errors == 1 and worker.stats.completed == 0
