"""The produce permission on the producer stream: the same check as over HTTP, per message."""

from __future__ import annotations

from codeq.wire.pb import producerpb_pb2 as ppb
from tests.grpc.conftest import Streams


async def test_a_producer_creates_only_the_commands_it_may(streams: Streams) -> None:
    conn = await streams.producer("render-producer")
    allowed = await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=1, command="render", payload=b"{}")))
    assert allowed.create_ack.ok, allowed.create_ack.error_message
    refused = await conn.ask(
        ppb.ProducerEvent(create=ppb.CreateTask(seq=2, command="billing", payload=b"{}"))
    )
    assert not refused.create_ack.ok and "codeq:produce" in refused.create_ack.error_message
    await conn.close()
