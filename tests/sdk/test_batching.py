"""Batched claims and batched results, over HTTP and over the gRPC streams."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest

from codeq.client import (
    Abandon,
    AsyncProducer,
    AsyncWorker,
    CodeqError,
    Fail,
    Job,
    Nack,
    NotFound,
    NotInProgress,
    Result,
    ResultSpec,
    Task,
    Transport,
)
from codeq.client._grpc import GrpcTransport
from codeq.client._http import HttpTransport
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import LiveServer, running

KINDS = ["http", "grpc"]


class RecordingHttp(HttpTransport):
    """The HTTP transport, noting how many tasks each claim got and each result batch carried."""

    claims: list[int]
    submitted: list[int]

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        tasks = await super().claim_many(commands, lease_seconds, wait_seconds, count)
        self.claims.append(len(tasks))
        return tasks

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result | CodeqError]:
        self.submitted.append(len(items))
        return await super().submit_results(items)


class RecordingGrpc(GrpcTransport):
    """The stream transport, noting the same."""

    claims: list[int]
    submitted: list[int]

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        tasks = await super().claim_many(commands, lease_seconds, wait_seconds, count)
        self.claims.append(len(tasks))
        return tasks

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result | CodeqError]:
        self.submitted.append(len(items))
        return await super().submit_results(items)


@pytest.fixture(params=KINDS)
async def transport(request: pytest.FixtureRequest, streams: LiveServer) -> AsyncIterator[Transport]:
    recording: RecordingHttp | RecordingGrpc
    if request.param == "http":
        recording = RecordingHttp(streams.url, WORKER_TOKEN)
    else:
        recording = RecordingGrpc(streams.worker_url, WORKER_TOKEN)
    recording.claims, recording.submitted = [], []
    yield recording
    await recording.aclose()


@pytest.fixture
async def producer(streams: LiveServer) -> AsyncIterator[AsyncProducer]:
    async with AsyncProducer(streams.url, PRODUCER_TOKEN) as client:
        yield client


async def _create(producer: AsyncProducer, command: str, payloads: Sequence[object]) -> list[Task]:
    created = await producer.create_many([{"command": command, "payload": p} for p in payloads])
    assert all(isinstance(task, Task) for task in created)
    return [task for task in created if isinstance(task, Task)]


async def test_claim_many_and_submit_results(transport: Transport, producer: AsyncProducer) -> None:
    created = await _create(producer, "batch", range(12))
    claimed = await transport.claim_many(["batch"], 60, 0, 12)  # HTTP: 10, then 2 (the server's cap)
    assert sorted(t.payload for t in claimed) == list(range(12))
    assert all(t.status == "IN_PROGRESS" and t.attempts == 1 for t in claimed)
    items = [ResultSpec(task_id=t.id, status="COMPLETED", result={"n": t.payload}) for t in claimed[:11]]
    items.append(ResultSpec(task_id=claimed[11].id, status="FAILED", error="bad input"))
    outcomes = await transport.submit_results(items)
    assert [(o.task_id, o.status) for o in outcomes if isinstance(o, Result)] == [
        (item.task_id, item.status) for item in items
    ]
    again = await transport.submit_results(
        [
            ResultSpec(task_id=claimed[0].id, status="COMPLETED", result={}),
            ResultSpec(task_id="00000000-0000-4000-8000-000000000000", status="COMPLETED", result={}),
        ]
    )
    assert [type(o) for o in again] == [NotInProgress, NotFound]
    by_id = {t.id: t.payload for t in created}
    for item in items:
        stored = await producer.result(item.task_id)
        if item.status == "COMPLETED":
            assert stored.result == {"n": by_id[item.task_id]}
        else:
            assert stored.status == "FAILED" and stored.error == "bad input"
    assert await transport.claim_many(["batch"], 60, 0, 5) == []


async def test_claim_many_waits_for_the_first_task(transport: Transport, producer: AsyncProducer) -> None:
    claiming = asyncio.ensure_future(transport.claim_many(["late"], 60, 10, 4))
    created = await _create(producer, "late", ["first"])
    claimed = await claiming
    assert [t.id for t in claimed] == [created[0].id]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_burst_with_batches_drains_every_task_and_acks_each_once(
    streams: LiveServer, producer: AsyncProducer, kind: str
) -> None:
    url = streams.url if kind == "http" else streams.worker_url
    acked: list[tuple[str, str]] = []
    worker = AsyncWorker(
        url,
        WORKER_TOKEN,
        concurrency=8,
        batch_size=8,
        on_ack=lambda job, outcome: acked.append((job.id, outcome)),
    )
    worker.register("square", lambda job: job.payload * job.payload)
    created = await _create(producer, "square", range(50))
    await worker.run(burst=True, handle_signals=False)
    assert Counter(acked) == {(task.id, "completed"): 1 for task in created}
    stats = worker.stats
    assert stats.claimed == stats.completed == stats.acknowledged == 50 and stats.ack_errors == 0
    for n, task in enumerate(created):
        result = await producer.result(task.id)
        assert result.status == "COMPLETED" and result.result == {"value": n * n}
        assert (await producer.get(task.id)).status == "COMPLETED"


async def test_claims_and_results_travel_in_batches(transport: Transport, producer: AsyncProducer) -> None:
    worker = AsyncWorker("unused", WORKER_TOKEN, concurrency=4, batch_size=8, transport=transport)
    running_now: list[int] = []
    most = 0

    @worker.handler("work")
    async def work(job: Job) -> None:
        nonlocal most
        running_now.append(1)
        most = max(most, len(running_now))
        await asyncio.sleep(0)  # let the other claimed tasks start, up to `concurrency`
        running_now.pop()

    await _create(producer, "work", range(20))
    await worker.run(burst=True, handle_signals=False)
    assert worker.stats.completed == 20 and most <= 4
    assert isinstance(transport, RecordingHttp | RecordingGrpc)
    assert max(transport.claims) == 8  # more claimed at once than handlers run at once
    assert sum(transport.submitted) == 20 and max(transport.submitted) > 1


async def test_a_batch_decided_together_sends_its_results_in_one_message(
    transport: Transport, producer: AsyncProducer
) -> None:
    worker = AsyncWorker("unused", WORKER_TOKEN, concurrency=8, batch_size=8, transport=transport)
    claimed_all = asyncio.Event()
    started = 0

    @worker.handler("together")
    async def together(job: Job) -> int:
        nonlocal started
        started += 1
        if started == 8:
            claimed_all.set()
        await claimed_all.wait()  # every handler of the claim finishes in the same turn
        return 1

    await _create(producer, "together", range(8))
    await worker.run(burst=True, handle_signals=False)
    assert isinstance(transport, RecordingHttp | RecordingGrpc)
    assert transport.claims[0] == 8
    # The last task's own result rides with the other seven, not in a message of its own.
    assert transport.submitted == [8] and worker.stats.completed == 8


@pytest.mark.parametrize("kind", KINDS)
async def test_nacks_and_abandons_go_alone_beside_a_batch(
    streams: LiveServer, producer: AsyncProducer, kind: str
) -> None:
    url = streams.url if kind == "http" else streams.worker_url
    outcomes: list[str] = []
    worker = AsyncWorker(
        url, WORKER_TOKEN, concurrency=4, batch_size=4, on_ack=lambda j, o: outcomes.append(o)
    )
    seen: Counter[str] = Counter()

    @worker.handler("mixed")
    def mixed(job: Job) -> object:
        seen[job.payload] += 1
        if job.payload == "abandon" and seen["abandon"] == 1:
            return Abandon()
        return {"nack": Nack(delay=60), "fail": Fail("no")}.get(job.payload, job.payload)

    created = await _create(producer, "mixed", ["done", "nack", "fail", "abandon"])
    await worker.run(burst=True, handle_signals=False)
    assert sorted(outcomes) == ["abandoned", "completed", "completed", "failed", "nacked"]
    done, nacked, failed, abandoned = created
    assert (await producer.result(done.id)).result == {"value": "done"}
    assert (await producer.result(failed.id)).error == "no"
    assert (await producer.get(nacked.id)).status == "PENDING"
    assert (await producer.result(abandoned.id)).result == {"value": "abandon"}


async def test_finished_results_do_not_wait_for_a_slow_task_of_their_batch(
    streams: LiveServer, producer: AsyncProducer
) -> None:
    two_acked, gate = asyncio.Event(), asyncio.Event()
    acked: list[object] = []

    def on_ack(job: Job, outcome: str) -> None:
        acked.append(job.payload)
        if len(acked) == 2:
            two_acked.set()

    worker = AsyncWorker(streams.url, WORKER_TOKEN, concurrency=3, batch_size=3, on_ack=on_ack)

    @worker.handler("linger")
    async def linger(job: Job) -> None:
        if job.payload == "slow":
            await gate.wait()

    slow = (await _create(producer, "linger", ["fast", "slow", "fast"]))[1]
    async with running(worker):
        await two_acked.wait()  # sent after the linger, while "slow" still runs
        assert acked == ["fast", "fast"]
        gate.set()
        assert (await producer.result(slow.id, wait=10)).status == "COMPLETED"
    assert worker.stats.acknowledged == 3


async def test_stop_hands_back_claimed_tasks_whose_handler_has_not_started(
    streams: LiveServer, producer: AsyncProducer
) -> None:
    worker = AsyncWorker(streams.url, WORKER_TOKEN, concurrency=1, batch_size=4)
    started, gate = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    @worker.handler("held")
    async def held(job: Job) -> None:
        ran.append(job.id)
        started.set()
        await gate.wait()

    created = await _create(producer, "held", range(4))
    async with running(worker):
        await started.wait()
        worker.stop()
        gate.set()
    assert len(ran) == 1 and worker.stats.completed == 1 and worker.stats.abandoned == 3
    for task in created:
        state = await producer.get(task.id)
        expected = ("COMPLETED", 1) if task.id in ran else ("PENDING", 0)
        assert (state.status, state.attempts) == expected
