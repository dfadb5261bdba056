"""Tenant isolation on the gRPC streams: tenant B's streams see and touch nothing of tenant A."""

from __future__ import annotations

from codeq.core.clock import FakeClock
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Streams, channels, start_app


async def test_b_cannot_claim_a(streams: Streams) -> None:
    await streams.create()
    other = await streams.worker("globex-worker")
    reply = await other.ask(wpb.WorkerEvent(ready=wpb.Ready(count=5, wait_seconds=1)))
    assert reply.WhichOneof("event") == "task_batch" and len(reply.task_batch.tasks) == 0
    mine = await streams.worker()
    assert (await streams.claim(mine)).tenant_id == "dev"


async def test_b_cannot_complete_a_in_a_batch(streams: Streams) -> None:
    task_id = await streams.create()
    await streams.claim(await streams.worker())
    other = await streams.worker("globex-worker")
    batch = wpb.ResultBatch(results=[wpb.Result(task_id=task_id, status="FAILED", error="x")])
    reply = await other.ask(wpb.WorkerEvent(result_batch=batch))
    acks = reply.result_ack_batch.acks
    # codeQ's text for results (spec 07 §4)
    assert [(a.task_id, a.ok, a.error_message) for a in acks] == [(task_id, False, "task not found")]


async def test_idempotency_keys_are_per_tenant_on_streams(streams: Streams) -> None:
    mine = await streams.create(idempotency_key="k-1")
    theirs = await streams.create(idempotency_key="k-1", token="globex-producer")
    assert mine != theirs
    again = await streams.create(idempotency_key="k-1")
    assert again == mine


async def test_hello_ack_names_the_token_tenant(streams: Streams) -> None:
    conn = streams.producer_conn()
    reply = await conn.ask(ppb.ProducerEvent(hello=ppb.Hello(token="globex-producer")))
    assert reply.hello_ack.tenant_id == "globex"
    await conn.close()


async def test_streams_share_the_rate_limits() -> None:
    clock = FakeClock()
    app = await start_app(
        clock,
        **{"rate_limit.producer_requests_per_minute": 60, "rate_limit.producer_burst_size": 1},
    )
    producer, worker = channels(app.streams)
    try:
        streams = Streams(app, clock, producer, worker)
        conn = await streams.producer()
        first = (await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=1, command="a")))).create_ack
        assert first.ok
        second = (await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=2, command="a")))).create_ack
        assert not second.ok and second.error_message == "rate limit exceeded (retry after 1 s)"
        await conn.close()
    finally:
        await producer.close()
        await worker.close()
        await app.stop()
