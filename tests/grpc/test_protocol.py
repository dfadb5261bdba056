"""Stream protocol edges with hand-built messages; after each, the server still serves new streams."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Conn, Streams

PRODUCER_HELLO = ppb.ProducerEvent(hello=ppb.Hello(token="dev-producer"))
WORKER_HELLO = wpb.WorkerEvent(hello=wpb.Hello(token="dev-worker"))


async def still_serving(streams: Streams) -> None:
    producer = await streams.producer()
    assert await producer.close() == (grpc.StatusCode.OK, "")
    worker = await streams.worker()
    assert await worker.close() == (grpc.StatusCode.OK, "")


async def ended(conn: Conn) -> tuple[grpc.StatusCode, str]:
    assert await asyncio.wait_for(conn.recv(), 5) is None
    return await conn.status()


# -- the first event ---------------------------------------------------------------------

FIRST_NOT_HELLO = [
    ppb.ProducerEvent(create=ppb.CreateTask(seq=1, command="render")).SerializeToString(),
    b"",  # an event with no oneof set
    b"\xff\xff\xff",  # not a message at all
]


@pytest.mark.parametrize("raw", FIRST_NOT_HELLO, ids=["create", "empty", "garbage"])
@pytest.mark.parametrize("side", ["producer", "worker"])
async def test_first_event_must_be_hello(streams: Streams, side: str, raw: bytes) -> None:
    conn = streams.producer_conn() if side == "producer" else streams.worker_conn()
    await conn.send(raw)
    assert await ended(conn) == (grpc.StatusCode.FAILED_PRECONDITION, "first event must be Hello")
    await still_serving(streams)


async def test_half_close_before_hello(streams: Streams) -> None:
    conn = streams.worker_conn()
    assert await conn.close() == (grpc.StatusCode.FAILED_PRECONDITION, "first event must be Hello")
    await still_serving(streams)


@pytest.mark.parametrize(
    ("token", "metadata", "status", "details"),
    [
        ("", (), grpc.StatusCode.UNAUTHENTICATED, "missing token"),
        ("nope", (), grpc.StatusCode.UNAUTHENTICATED, "auth failed: invalid token"),
        (
            "",
            (("authorization", "Bearer nope"),),
            grpc.StatusCode.UNAUTHENTICATED,
            "auth failed: invalid token",
        ),
        (
            "",
            (("authorization", "Basic x"),),
            grpc.StatusCode.UNAUTHENTICATED,
            "auth failed: invalid Authorization format",
        ),
        ("bad-tenant-producer", (), grpc.StatusCode.PERMISSION_DENIED, "invalid tenant claims"),
    ],
)
async def test_producer_hello_failures(
    streams: Streams, token: str, metadata: tuple[tuple[str, str], ...], status: grpc.StatusCode, details: str
) -> None:
    conn = streams.producer_conn(metadata)
    await conn.send(ppb.ProducerEvent(hello=ppb.Hello(token=token)))
    assert await ended(conn) == (status, details)
    await still_serving(streams)


@pytest.mark.parametrize(
    ("token", "worker_id", "status", "details"),
    [
        ("", "", grpc.StatusCode.UNAUTHENTICATED, "missing token"),
        ("dev-producer", "", grpc.StatusCode.UNAUTHENTICATED, "auth failed: invalid token"),
        ("bad-tenant-worker", "", grpc.StatusCode.PERMISSION_DENIED, "invalid tenant claims"),
        ("dev-worker", "x" * 129, grpc.StatusCode.INVALID_ARGUMENT, "invalid worker_id"),
        ("dev-worker", "tab\there", grpc.StatusCode.INVALID_ARGUMENT, "invalid worker_id"),
    ],
)
async def test_worker_hello_failures(
    streams: Streams, token: str, worker_id: str, status: grpc.StatusCode, details: str
) -> None:
    conn = streams.worker_conn()
    await conn.send(wpb.WorkerEvent(hello=wpb.Hello(token=token, worker_id=worker_id)))
    assert await ended(conn) == (status, details)
    await still_serving(streams)


async def test_hello_token_wins_over_metadata(streams: Streams) -> None:
    conn = streams.producer_conn(metadata=[("authorization", "Bearer globex-producer")])
    reply = await conn.ask(PRODUCER_HELLO)
    assert reply.hello_ack.tenant_id == "dev"


# -- events after Hello ------------------------------------------------------------------

# Field 2 is `create` (a message) on the producer and `ready` on the worker; as a varint it is
# the wrong wire type. Field 15 is unknown to both.
WRONG_TYPES = [bytes([0x10, 0x05]), bytes([0x7A, 0x01, 0x00]), bytes([0x0D, 1, 2, 3, 4])]


@pytest.mark.parametrize("side", ["producer", "worker"])
async def test_bad_events_get_in_stream_errors_and_the_stream_goes_on(streams: Streams, side: str) -> None:
    conn = await (streams.producer() if side == "producer" else streams.worker())
    pb = ppb if side == "producer" else wpb
    hello = PRODUCER_HELLO if side == "producer" else WORKER_HELLO

    reply = await conn.ask(b"")
    assert reply.error == pb.ServerError(code="InvalidArgument", message="unknown-event")
    reply = await conn.ask(b"\xff\xff\xff\xff")
    assert reply.error == pb.ServerError(code="InvalidArgument", message="malformed-event")
    for raw in WRONG_TYPES:
        reply = await conn.ask(raw)
        assert reply.error.code == "InvalidArgument", raw
        assert reply.error.message in ("unknown-event", "malformed-event")
    reply = await conn.ask(hello)
    assert reply.error == pb.ServerError(code="FailedPrecondition", message="already-authenticated")
    if side == "producer":
        reply = await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=3, command="render")))
        assert reply.create_ack.ok and reply.create_ack.seq == 3
    else:
        reply = await conn.ask(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id="t")))
        assert reply.heartbeat_ack == wpb.HeartbeatAck(task_id="t", error_message="not-found")
    assert await conn.close() == (grpc.StatusCode.OK, "")
    await still_serving(streams)


async def test_ready_count_is_capped(streams: Streams) -> None:
    worker = await streams.worker()
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=257)))
    assert reply.error == wpb.ServerError(code="InvalidArgument", message="count exceeds maximum of 256")
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=256, wait_seconds=1)))
    assert reply.WhichOneof("event") == "task_batch"
    await still_serving(streams)


@pytest.mark.parametrize("count", [0, 1, 5])
async def test_ready_with_nothing_to_claim_gets_an_empty_batch(streams: Streams, count: int) -> None:
    worker = await streams.worker()
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=count, wait_seconds=1)))
    assert reply.WhichOneof("event") == "task_batch" and len(reply.task_batch.tasks) == 0
    assert loop.time() - started >= 0.9  # it waited for a task first
    assert await worker.close() == (grpc.StatusCode.OK, "")


async def test_ready_errors_are_server_errors(streams: Streams) -> None:
    narrow = await streams.worker("render-worker")
    reply = await narrow.ask(wpb.WorkerEvent(ready=wpb.Ready(commands=["other"], wait_seconds=1)))
    assert reply.error == wpb.ServerError(code="PermissionDenied", message="event type not allowed")
    worker = await streams.worker()
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(commands=["bad name"])))
    assert reply.error == wpb.ServerError(code="InvalidArgument", message="invalid command")
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(lease_seconds=10**9)))
    assert reply.error.code == "InvalidArgument" and "'lease_seconds'" in reply.error.message


async def test_half_close_answers_pending_readys_then_ends(streams: Streams) -> None:
    worker = await streams.worker()
    await worker.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=30)))
    await worker.send(wpb.WorkerEvent(ready=wpb.Ready(count=3, wait_seconds=30)))
    await asyncio.sleep(0.05)
    await worker.call.done_writing()
    replies = [await asyncio.wait_for(worker.recv(), 5) for _ in range(2)]
    assert [r.WhichOneof("event") for r in replies] == ["task_batch", "task_batch"]
    assert await ended(worker) == (grpc.StatusCode.OK, "")
    # The waits ended without claiming anything: a new task is still there for the next worker.
    task_id = await streams.create()
    assert (await streams.claim(await streams.worker())).id == task_id


async def test_client_cancel_leaves_the_server_healthy(streams: Streams) -> None:
    worker = await streams.worker()
    await worker.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=30)))
    await asyncio.sleep(0.05)
    worker.call.cancel()
    await asyncio.sleep(0.05)
    task_id = await streams.create()
    assert (await streams.claim(await streams.worker())).id == task_id
    await still_serving(streams)


# -- token expiry ------------------------------------------------------------------------


async def test_token_expiring_mid_stream_ends_it_at_the_next_event(streams: Streams) -> None:
    worker = await streams.worker("brief-worker")
    reply = await worker.ask(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id="t")))
    assert reply.heartbeat_ack.error_message == "not-found"
    streams.clock.advance(2)
    await worker.send(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id="t")))
    assert await ended(worker) == (grpc.StatusCode.UNAUTHENTICATED, "token expired")
    await still_serving(streams)


async def test_token_expiring_on_an_idle_stream_ends_it(streams: Streams) -> None:
    producer = await streams.producer("brief-producer")
    worker = await streams.worker("brief-worker")
    await worker.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=30)))
    await asyncio.sleep(0.05)
    streams.clock.advance(2)  # the watchdog looks again within the 1 s the token had left
    assert await ended(producer) == (grpc.StatusCode.UNAUTHENTICATED, "token expired")
    reply = await asyncio.wait_for(worker.recv(), 5)
    assert reply.WhichOneof("event") == "task_batch"  # the pending Ready is still answered
    assert await ended(worker) == (grpc.StatusCode.UNAUTHENTICATED, "token expired")
    await still_serving(streams)


async def test_expired_token_is_refused_at_hello(streams: Streams) -> None:
    streams.clock.advance(2)
    conn = streams.producer_conn()
    await conn.send(ppb.ProducerEvent(hello=ppb.Hello(token="brief-producer")))
    assert await ended(conn) == (grpc.StatusCode.UNAUTHENTICATED, "auth failed: invalid token")
