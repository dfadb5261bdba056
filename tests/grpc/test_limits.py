"""Who may act on a task, the per-stream bounds, message sizes, and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest

from codeq.core.clock import FakeClock
from codeq.transport.grpc.server import StreamServers
from codeq.transport.grpc.servicer import StreamLimits
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Streams, channels, start_app

KINDS = ["result", "nack", "heartbeat", "abandon"]


def report(task_id: str, kind: str) -> wpb.WorkerEvent:
    match kind:
        case "result":
            return wpb.WorkerEvent(result=wpb.Result(task_id=task_id, status="COMPLETED", result_json=b"{}"))
        case "nack":
            return wpb.WorkerEvent(nack=wpb.Nack(task_id=task_id))
        case "heartbeat":
            return wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id=task_id))
        case _:
            return wpb.WorkerEvent(abandon=wpb.Abandon(task_id=task_id))


def ack_of(reply: wpb.ServerEvent) -> tuple[str, bool, str]:
    ack = getattr(reply, str(reply.WhichOneof("event")))
    return ack.task_id, ack.ok, ack.error_message


@pytest.mark.parametrize("kind", KINDS)
async def test_reports_check_tenant_owner_and_state(streams: Streams, kind: str) -> None:
    task_id = await streams.create()
    owner = await streams.worker(worker_id="a")
    await streams.claim(owner)

    # codeQ's texts: results say "task not found", the other reports "not-found" (spec 07 §4)
    unknown = "task not found" if kind == "result" else "not-found"
    other_tenant = await streams.worker("globex-worker")
    assert ack_of(await other_tenant.ask(report(task_id, kind))) == (task_id, False, unknown)
    other_instance = await streams.worker(worker_id="b")
    assert ack_of(await other_instance.ask(report(task_id, kind))) == (task_id, False, "not-owner")
    plain = await streams.worker()  # the bare subject is not instance "a" either
    assert ack_of(await plain.ask(report(task_id, kind))) == (task_id, False, "not-owner")
    assert ack_of(await owner.ask(report(task_id, "result")))[1]
    assert ack_of(await owner.ask(report(task_id, kind))) == (task_id, False, "not-in-progress")
    assert ack_of(await owner.ask(report("no-such-task", kind))) == ("no-such-task", False, unknown)


@pytest.mark.parametrize("kind", KINDS)
async def test_reports_need_their_scope(streams: Streams, kind: str) -> None:
    task_id = await streams.create()
    narrow = await streams.worker("render-worker")
    assert (await streams.claim(narrow)).id == task_id
    assert ack_of(await narrow.ask(report(task_id, kind))) == (task_id, False, "missing scope")


async def test_result_rules(streams: Streams) -> None:
    worker = await streams.worker()
    task_id = await streams.create()
    await streams.claim(worker)

    async def submit(**fields: object) -> tuple[str, bool, str]:
        return ack_of(await worker.ask(wpb.WorkerEvent(result=wpb.Result(task_id=task_id, **fields))))

    required = "result required when status=COMPLETED"
    assert (await submit(status="COMPLETED"))[2] == required
    assert (await submit(status="COMPLETED", result_json=b"null"))[2] == required
    assert (await submit(status="COMPLETED", result_json=b"[1]"))[
        2
    ] == "invalid 'result_json' (must be a JSON object)"
    assert (await submit(status="COMPLETED", result_json=b"{x"))[2] == "invalid 'result_json' (must be JSON)"
    assert (await submit(status="FAILED", error=" "))[2] == "error required when status=FAILED"
    assert await submit(status="FAILED", error="broke") == (task_id, True, "")


# -- bounds, on a second pair of stream servers with tiny limits -----------------------------


@pytest.fixture
async def tight() -> AsyncIterator[Streams]:
    clock = FakeClock()
    app = await start_app(clock, producer_stream_addr="", worker_stream_addr="")
    limits = StreamLimits(max_message_bytes=16 * 1024, max_in_flight=2, max_ready_count=4)
    servers = StreamServers.build(
        app.services, producer_addr="127.0.0.1:0", worker_addr="127.0.0.1:0", limits=limits
    )
    await servers.start()
    producer, worker = channels(servers)
    try:
        yield Streams(app, clock, producer, worker)
    finally:
        await producer.close()
        await worker.close()
        await servers.stop(1)
        await app.stop()


async def test_the_read_loop_waits_while_the_handlers_are_busy(tight: Streams) -> None:
    worker = await tight.worker()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(2):
        await worker.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=1)))
    await worker.send(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id="t")))
    first = await worker.recv()
    assert first.WhichOneof("event") == "task_batch"  # not the heartbeat: it was not read yet
    replies = [first, await worker.recv(), await worker.recv()]
    assert sorted(str(r.WhichOneof("event")) for r in replies) == [
        "heartbeat_ack",
        "task_batch",
        "task_batch",
    ]
    assert loop.time() - started >= 0.9


async def test_ready_count_cap_is_configurable(tight: Streams) -> None:
    worker = await tight.worker()
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=5)))
    assert reply.error == wpb.ServerError(code="InvalidArgument", message="count exceeds maximum of 4")


async def test_a_delivery_holds_what_fits_one_message_and_returns_the_rest(tight: Streams) -> None:
    payload = json.dumps({"blob": "x" * 6000}).encode()
    created = {await tight.create(payload=payload) for _ in range(5)}
    worker = await tight.worker()
    delivered: list[str] = []
    for _ in range(3):
        batch = (await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=4, wait_seconds=1)))).task_batch
        assert 1 <= len(batch.tasks) <= 2
        delivered += [task.id for task in batch.tasks]
    assert sorted(delivered) == sorted(created)


async def test_an_oversized_message_ends_only_its_own_stream(tight: Streams) -> None:
    producer = await tight.producer()
    create = ppb.CreateTask(seq=1, command="render", payload=json.dumps("x" * 20_000).encode())
    await producer.send(ppb.ProducerEvent(create=create))
    assert await producer.recv() is None
    assert (await producer.status())[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await tight.create()


# -- shutdown ----------------------------------------------------------------------------


async def test_stop_answers_pending_readys_and_ends_every_stream() -> None:
    clock = FakeClock()
    app = await start_app(clock, shutdown_grace_seconds=60)
    producer_channel, worker_channel = channels(app.streams)
    streams = Streams(app, clock, producer_channel, worker_channel)
    try:
        producer = await streams.producer()
        worker = await streams.worker()
        await worker.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=30)))
        silent = streams.worker_conn()  # opened, but never said Hello
        await silent.send(b"")
        await asyncio.sleep(0.05)
        # Well within the 60 s grace: every stream ends once its handlers have answered.
        await asyncio.wait_for(app.stop(), 20)
        reply = await worker.recv()
        assert reply.WhichOneof("event") == "task_batch" and len(reply.task_batch.tasks) == 0
        shutting_down = (grpc.StatusCode.UNAVAILABLE, "server shutting down")
        assert await worker.recv() is None and await worker.status() == shutting_down
        assert await producer.recv() is None and await producer.status() == shutting_down
        assert await silent.recv() is None
    finally:
        await producer_channel.close()
        await worker_channel.close()


async def test_the_stream_limits_come_from_the_configuration() -> None:
    clock = FakeClock()
    app = await start_app(clock, grpc_max_ready_count=3, grpc_max_in_flight=2, grpc_ready_wait_seconds=7)
    producer, worker_channel = channels(app.streams)
    try:
        streams = Streams(app, clock, producer, worker_channel)
        worker = await streams.worker()
        reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=4)))
        assert reply.error == wpb.ServerError(code="InvalidArgument", message="count exceeds maximum of 3")
        assert app.streams.worker is not None
        limits = app.streams.worker.servicer.limits
        assert (limits.max_in_flight, limits.ready_wait_seconds) == (2, 7)
        await worker.close()
    finally:
        await producer.close()
        await worker_channel.close()
        await app.stop()
