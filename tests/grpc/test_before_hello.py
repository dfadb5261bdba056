"""Streams before authentication: a Hello deadline, a cap per connection, HTTP/2 stream limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from codeq.core.clock import FakeClock
from codeq.transport.grpc.server import StreamServers
from codeq.transport.grpc.servicer import StreamLimits
from codeq.wire.pb import producerpb_pb2 as ppb
from tests.grpc.conftest import Conn, Streams, channels, start_app
from tests.support.server import ServerProcess, free_port

PRODUCER_METHOD = "/producerpb.ProducerStream/Stream"
HELLO = ppb.ProducerEvent(hello=ppb.Hello(token="dev-producer"))
CAPPED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "too many streams awaiting Hello on this connection")


async def ended_with(conn: Conn) -> tuple[grpc.StatusCode, str]:
    """How a stream that is sent nothing ends (bounded, so a stream left open fails the test)."""
    return await asyncio.wait_for(conn.status(), 30)


@pytest.mark.process
async def test_silent_streams_against_codeq_serve_are_bounded_and_ended(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        tmp_path / "data",
        args=["--producer-stream-addr", f"127.0.0.1:{port}", "--worker-stream-addr", ""],
        env={"GRPC_HELLO_TIMEOUT_SECONDS": "1"},
    )
    server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            silent = [Conn(channel, PRODUCER_METHOD, ppb.ServerEvent, ()) for _ in range(40)]
            ends = await asyncio.gather(*(ended_with(conn) for conn in silent))
            assert Counter(ends) == {
                CAPPED: 24,
                (grpc.StatusCode.UNAUTHENTICATED, "no Hello within 1 s"): 16,
            }
            # The connection and the server still serve a stream that says Hello.
            conn = Conn(channel, PRODUCER_METHOD, ppb.ServerEvent, ())
            assert (await conn.ask(HELLO)).WhichOneof("event") == "hello_ack"
            await conn.close()
    finally:
        server.stop()


async def build(limits: StreamLimits) -> tuple[Streams, StreamServers]:
    clock = FakeClock()
    app = await start_app(clock, producer_stream_addr="", worker_stream_addr="")
    assert app.services is not None
    servers = StreamServers.build(
        app.services, producer_addr="127.0.0.1:0", worker_addr="127.0.0.1:0", limits=limits
    )
    await servers.start()
    producer, worker = channels(servers)
    return Streams(app, clock, producer, worker), servers


@pytest.fixture
async def quick_deadline() -> AsyncIterator[Streams]:
    streams, servers = await build(StreamLimits(hello_timeout_seconds=0.5))
    try:
        yield streams
    finally:
        await servers.stop(1)
        await streams.app.stop()


@pytest.fixture
async def capped() -> AsyncIterator[tuple[Streams, StreamServers]]:
    limits = StreamLimits(max_concurrent_streams=3, max_unauthenticated_streams_per_connection=2)
    streams, servers = await build(limits)
    try:
        yield streams, servers
    finally:
        await servers.stop(1)
        await streams.app.stop()


async def test_a_stream_without_hello_ends_unauthenticated_at_the_deadline(quick_deadline: Streams) -> None:
    conn = quick_deadline.producer_conn()
    assert await ended_with(conn) == (grpc.StatusCode.UNAUTHENTICATED, "no Hello within 0.5 s")


async def test_a_stream_that_said_hello_outlives_the_deadline(quick_deadline: Streams) -> None:
    conn = await quick_deadline.producer()
    other = quick_deadline.producer_conn()
    assert (await ended_with(other))[0] == grpc.StatusCode.UNAUTHENTICATED  # the deadline passed
    create = ppb.ProducerEvent(create=ppb.CreateTask(seq=1, command="render", payload=b"{}"))
    assert (await conn.ask(create)).create_ack.ok


async def awaiting_hello(servers: StreamServers, count: int) -> None:
    """Until the producer server holds `count` streams awaiting their Hello."""
    assert servers.producer is not None
    servicer = servers.producer.servicer
    async with asyncio.timeout(30):
        while servicer.awaiting_hello() != count:
            await asyncio.sleep(0.01)  # polling the server's state, not waiting on behaviour


async def test_streams_awaiting_hello_are_capped_per_connection(
    capped: tuple[Streams, StreamServers],
) -> None:
    streams, servers = capped
    waiting = [streams.producer_conn() for _ in range(2)]
    await awaiting_hello(servers, 2)
    third = streams.producer_conn()
    assert await ended_with(third) == CAPPED
    # A waiting stream that says Hello frees its place.
    assert (await waiting[0].ask(HELLO)).WhichOneof("event") == "hello_ack"
    fourth = streams.producer_conn()
    assert (await fourth.ask(HELLO)).WhichOneof("event") == "hello_ack"
    assert servers.producer is not None and servers.producer.servicer.awaiting_hello() == 1


async def test_concurrent_streams_per_connection_are_capped(capped: tuple[Streams, StreamServers]) -> None:
    streams, _ = capped
    live = [await streams.producer() for _ in range(3)]
    held = streams.producer_conn()
    # The fourth stream is held by HTTP/2 until one of the three ends: it never reaches the
    # server, so its Hello is not answered while they are open.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(held.ask(HELLO), 1)
    held.call.cancel()
    await live[0].close()
    later = streams.producer_conn()
    assert (await later.ask(HELLO)).WhichOneof("event") == "hello_ack"
