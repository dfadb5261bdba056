"""Streams refused after Hello so that they land on a less loaded shard process (ADR 0009): the
refusal on the wire, a raw client retrying on its connection, the count of live streams, and
the SDK connecting again at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from codeq.client import TaskSpec
from codeq.client._grpc import REBALANCE_REDIALS, GrpcTransport
from codeq.cluster.stream_table import StreamBalance, StreamTable, create_table
from codeq.transport.grpc.servicer import REBALANCE_METADATA, StreamServicer
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Conn, Streams
from tests.support.waiting import eventually

PRODUCER_METHOD = "/producerpb.ProducerStream/Stream"
HELLO = ppb.ProducerEvent(hello=ppb.Hello(token="dev-producer"))


@dataclass
class Node:
    """The in-process server as shard process 0 of two; the test writes process 1's slot."""

    streams: Streams
    balance: StreamBalance
    other: StreamTable

    def servicer(self, kind: str) -> StreamServicer:
        server = getattr(self.streams.app.streams, kind)
        assert server is not None
        servicer: StreamServicer = server.servicer
        return servicer

    def address(self, kind: str) -> str:
        server = getattr(self.streams.app.streams, kind)
        assert server is not None
        return f"127.0.0.1:{server.port}"


@pytest.fixture
async def node(streams: Streams, tmp_path: Path) -> AsyncIterator[Node]:
    path = str(tmp_path / "streams")
    create_table(path, 2)
    clock = streams.clock
    own, other = StreamTable(path, 2, 0, clock.now_ms), StreamTable(path, 2, 1, clock.now_ms)
    own.beat()
    other.beat()  # process 1 is up and holds no stream
    balance = StreamBalance(own)
    for server in (streams.app.streams.producer, streams.app.streams.worker):
        assert server is not None
        server.servicer.admission = balance
    yield Node(streams, balance, other)


async def hello_on(channel: grpc.aio.Channel) -> tuple[Conn, ppb.ServerEvent | None]:
    conn = Conn(channel, PRODUCER_METHOD, ppb.ServerEvent, ())
    return conn, await conn.ask(HELLO)


async def test_a_refused_stream_ends_before_hello_ack_and_its_connection_is_served_next(node: Node) -> None:
    kept = await node.streams.producer()  # 1 here against 0 there: the next one goes there
    async with grpc.aio.insecure_channel(node.address("producer")) as channel:
        refused, reply = await hello_on(channel)
        assert reply is None
        assert await refused.status() == (grpc.StatusCode.UNAVAILABLE, "rebalancing: connect again")
        assert (REBALANCE_METADATA, "1") in tuple(await refused.call.trailing_metadata())
        # A client that retries on the same connection (codeQ's Go SDK does) is served.
        again, reply = await hello_on(channel)
        assert reply is not None and reply.WhichOneof("event") == "hello_ack"
        create = ppb.CreateTask(seq=1, command="render", payload=b"{}")
        assert (await again.ask(ppb.ProducerEvent(create=create))).create_ack.ok
        await again.close()
    await kept.close()
    assert node.balance.refused == {"producer": 1, "worker": 0}


async def test_nothing_is_refused_while_the_other_process_holds_as_many(node: Node) -> None:
    node.other.add("worker", 2)
    conns = [await node.streams.worker() for _ in range(3)]  # 0, 1 then 2 against 2
    assert node.balance.table.counts["worker"] == 3
    refused = node.streams.worker_conn()
    assert await refused.ask(wpb.WorkerEvent(hello=wpb.Hello(token="dev-worker"))) is None
    assert (await refused.status())[0] == grpc.StatusCode.UNAVAILABLE
    for conn in conns:
        await conn.close()


async def test_a_stream_is_counted_until_it_ends_however_it_ends(node: Node) -> None:
    counts = node.balance.table.counts
    node.other.add("worker", 5)  # nothing is refused here
    closed, cancelled = [await node.streams.worker() for _ in range(2)]
    lapsing = await node.streams.worker("brief-worker")  # its token lapses 1 s from now
    assert counts["worker"] == 3
    await closed.close()  # the client half-closes
    assert counts["worker"] == 2
    cancelled.call.cancel()  # the client goes away
    await eventually(lambda: counts["worker"] == 1, turns=500, pause=0.01)
    node.streams.clock.advance(2)
    node.other.beat()
    with contextlib.suppress(grpc.aio.AioRpcError):  # its expiry watchdog may have ended it already
        await lapsing.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=1)))
    assert await lapsing.recv() is None  # the server ended it
    assert await lapsing.status() == (grpc.StatusCode.UNAUTHENTICATED, "token expired")
    assert counts == {"producer": 0, "worker": 0}
    assert node.other.view("worker") == [0, 5]


async def test_the_sdk_connects_again_at_once_on_a_fresh_connection(node: Node) -> None:
    kept = await node.streams.producer()
    peers: list[tuple[str, bool]] = []
    balance = node.balance

    class Recording:
        def admit(self, kind: str, peer: str) -> bool:
            taken = balance.admit(kind, peer)
            peers.append((peer, taken))
            if len(peers) == 2:  # process 1 got two streams from elsewhere meanwhile
                node.other.add("producer", 2)
            return taken

        def release(self, kind: str) -> None:
            balance.release(kind)

    node.servicer("producer").admission = Recording()
    transport = GrpcTransport(f"grpc://{node.address('producer')}", "dev-producer")
    try:  # one call, no error for the SDK's retries to back off from
        task = await transport.create(TaskSpec(command="render", payload=1))
    finally:
        await transport.aclose()
    assert task.id
    assert [taken for _, taken in peers] == [False, False, True]
    assert len({peer for peer, _ in peers}) == 3  # each attempt on a connection of its own
    await kept.close()


async def test_the_sdk_takes_the_refusing_process_after_its_fresh_attempts(node: Node) -> None:
    kept = await node.streams.producer()  # every fresh connection here is refused
    transport = GrpcTransport(f"grpc://{node.address('producer')}", "dev-producer")
    try:
        task = await transport.create(TaskSpec(command="render", payload=1))
    finally:
        await transport.aclose()
    assert task.id
    # The first connection and every fresh one refused once; then taken on the last one.
    assert node.balance.refused["producer"] == REBALANCE_REDIALS + 1
    assert node.balance.table.counts["producer"] == 1
    await kept.close()
