"""Worker against a live server: handlers, outcomes, errors, concurrency, burst and redirects."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from codeq.client import (
    Abandon,
    AsyncProducer,
    AsyncWorker,
    CodeqError,
    Fail,
    Job,
    Nack,
    NotOwner,
    Task,
    Unauthorized,
    Worker,
)
from tests.sdk.conftest import WORKER_TOKEN
from tests.sdk.live import LiveServer, Redirector, Served, running


def _worker(server: LiveServer, **options: object) -> AsyncWorker:
    return AsyncWorker(server.url, WORKER_TOKEN, **options)  # type: ignore[arg-type]


async def test_round_trip_with_async_and_sync_handlers(server: LiveServer, producer: AsyncProducer) -> None:
    worker = _worker(server, concurrency=2)
    seen: list[tuple[str, object, int, int]] = []

    @worker.handler("render")
    async def render(job: Job) -> dict[str, object]:
        seen.append((job.command, job.payload, job.attempts, job.max_attempts))
        return {"pages": job.payload["pages"] * 2}

    def count(job: Job) -> int:
        assert threading.current_thread() is not threading.main_thread()
        return len(job.payload)

    worker.register("Count", count)
    worker.register("noop", lambda job: None)
    rendered = await producer.create("render", {"pages": 3}, max_attempts=4)
    counted = await producer.create("count", [1, 2, 3])
    nothing = await producer.create("noop", 0)
    async with running(worker):
        assert (await producer.result(rendered.id, wait=10)).result == {"pages": 6}
        assert (await producer.result(counted.id, wait=10)).result == {"value": 3}
        assert (await producer.result(nothing.id, wait=10)).result == {}
    assert seen == [("render", {"pages": 3}, 1, 4)]
    assert worker.stats.claimed == 3 and worker.stats.completed == 3 and worker.stats.ack_errors == 0


async def test_explicit_outcomes_fail_abandon_and_nack(server: LiveServer, producer: AsyncProducer) -> None:
    worker = _worker(server)
    calls: dict[str, list[int]] = {"abandon": [], "nack": []}

    @worker.handler("fail")
    def fail(job: Job) -> Fail:
        return Fail("bad input")

    @worker.handler("abandon")
    def abandon(job: Job) -> Abandon | str:
        calls["abandon"].append(job.attempts)
        return Abandon() if len(calls["abandon"]) == 1 else "second time"

    @worker.handler("nack")
    def nack(job: Job) -> Nack | str:
        calls["nack"].append(job.attempts)
        return Nack(delay=0, reason="not yet") if len(calls["nack"]) == 1 else "retried"

    failing = await producer.create("fail", 1)
    abandoned = await producer.create("abandon", 1)
    nacked = await producer.create("nack", 1)
    async with running(worker):
        failed = await producer.result(failing.id, wait=10)
        assert failed.status == "FAILED" and failed.error == "bad input"
        assert (await producer.result(abandoned.id, wait=10)).result == {"value": "second time"}
        assert (await producer.result(nacked.id, wait=10)).result == {"value": "retried"}
    assert calls == {"abandon": [1, 1], "nack": [1, 2]}  # abandon gives the attempt back
    assert worker.stats.abandoned == 1 and worker.stats.nacked == 1 and worker.stats.failed == 1


async def test_a_raising_handler_is_nacked_with_backoff_then_dead_lettered(
    server: LiveServer, producer: AsyncProducer
) -> None:
    worker = _worker(server)
    attempts: list[int] = []

    @worker.handler("flaky")
    async def flaky(job: Job) -> None:
        attempts.append(job.attempts)
        raise RuntimeError(f"boom {job.attempts}")

    task = await producer.create("flaky", 1, max_attempts=2)
    async with running(worker):
        result = await producer.result(task.id, wait=20)
    assert attempts == [1, 2]
    assert result.status == "FAILED" and result.error == "RuntimeError: boom 2"
    final = await producer.get(task.id)
    assert final.status == "FAILED" and final.attempts == 2
    assert worker.stats.handler_errors == 2 and worker.stats.dead_lettered == 1


async def test_on_error_fail_finishes_the_task_with_the_exception_text(
    server: LiveServer, producer: AsyncProducer
) -> None:
    worker = _worker(server, on_error="fail")

    @worker.handler("broken")
    def broken(job: Job) -> None:
        raise ValueError("no such page")

    task = await producer.create("broken", 1)
    async with running(worker):
        result = await producer.result(task.id, wait=10)
    assert result.status == "FAILED" and result.error == "ValueError: no such page"
    assert (await producer.get(task.id)).attempts == 1


async def test_a_refused_ack_is_reported_not_lost(server: LiveServer, producer: AsyncProducer) -> None:
    refused: list[tuple[str, CodeqError]] = []
    reported = asyncio.Event()

    def on_ack_error(job: Job, error: CodeqError) -> None:
        refused.append((job.id, error))
        reported.set()

    worker = _worker(server, on_ack_error=on_ack_error)

    @worker.handler("race")
    async def race(job: Job) -> str:
        # Someone else finishes the delivery first (here: the same worker identity over HTTP).
        headers = {"Authorization": f"Bearer {WORKER_TOKEN}", "X-Worker-Id": worker.worker_id}
        async with httpx.AsyncClient(base_url=f"{server.url}/v1/codeq", headers=headers) as http:
            done = await http.post(f"/tasks/{job.id}/result", json={"status": "COMPLETED", "result": {}})
            assert done.status_code == 200
        return "too late"

    task = await producer.create("race", 1)
    async with running(worker):
        await reported.wait()
    # The worker's result presents its lease token, and that lease ended: not-owner (409).
    assert refused[0][0] == task.id and isinstance(refused[0][1], NotOwner)
    assert refused[0][1].status == 409
    assert worker.stats.ack_errors == 1 and worker.stats.completed == 0


async def test_concurrency_bounds_running_handlers_and_claims(
    server: LiveServer, producer: AsyncProducer
) -> None:
    worker = _worker(server, concurrency=2)
    gate = asyncio.Event()
    two_running = asyncio.Event()
    active: list[str] = []

    @worker.handler("slow")
    async def slow(job: Job) -> None:
        active.append(job.id)
        if len(active) == 2:
            two_running.set()
        await gate.wait()

    tasks = [await producer.create("slow", i) for i in range(3)]
    async with running(worker):
        await two_running.wait()
        states = [(await producer.get(t.id)).status for t in tasks]
        assert sorted(states) == ["IN_PROGRESS", "IN_PROGRESS", "PENDING"]  # no third claim
        gate.set()
        for t in tasks:
            await producer.result(t.id, wait=10)
    assert len(active) == 3


async def test_burst_mode_drains_the_queue_and_returns(server: LiveServer, producer: AsyncProducer) -> None:
    worker = Worker(server.url, WORKER_TOKEN, concurrency=3)
    worker.register("square", lambda job: job.payload * job.payload)
    created = await producer.create_many([{"command": "square", "payload": n} for n in range(10)])
    await asyncio.to_thread(worker.run, burst=True)
    assert worker.stats.completed == 10
    for n, task in enumerate(created):
        assert isinstance(task, Task)
        assert (await producer.result(task.id)).result == {"value": n * n}


async def test_worker_follows_leader_redirects(server: LiveServer, producer: AsyncProducer) -> None:
    redirector = Redirector(server.url)
    follower = Served(redirector)
    worker = AsyncWorker(follower.url, WORKER_TOKEN)
    worker.register("render", lambda job: {"ok": job.payload})
    task = await producer.create("render", 5)
    try:
        await worker.run(burst=True, handle_signals=False)
    finally:
        await follower.stop()
    assert (await producer.result(task.id)).result == {"ok": 5}
    assert redirector.redirected >= 3  # claim, result, and the empty claim that ended the burst


async def test_a_worker_the_server_refuses_stops_with_the_error(server: LiveServer) -> None:
    worker = AsyncWorker(server.url, "not-a-token")
    worker.register("render", lambda job: None)
    with pytest.raises(Unauthorized):
        await worker.run(handle_signals=False)
    assert not worker.running
