"""Deep or non-UTF-8 JSON in a stream's `payload` or `result_json`: that event's own error."""

from __future__ import annotations

import pytest

from codeq.transport.json_input import MAX_JSON_DEPTH
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Streams

DEEP = b'{"k":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
OVER = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
NOT_UTF8 = b'{"k":"\xff"}'
AT_LIMIT = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(DEEP, "nested deeper"), (OVER, "nested deeper"), (NOT_UTF8, "not valid UTF-8")],
    ids=["deep", "one-over", "not-utf8"],
)
async def test_a_bad_payload_is_refused_in_its_ack(streams: Streams, payload: bytes, reason: str) -> None:
    conn = await streams.producer()
    reply = await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=7, command="render", payload=payload)))
    ack = reply.create_ack
    assert (ack.seq, ack.ok) == (7, False), reply
    assert "payload" in ack.error_message and reason in ack.error_message, ack.error_message
    # The stream is still usable.
    ok = await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=8, command="render", payload=b"{}")))
    assert ok.create_ack.ok


async def test_a_payload_at_the_limit_is_accepted(streams: Streams) -> None:
    conn = await streams.producer()
    reply = await conn.ask(ppb.ProducerEvent(create=ppb.CreateTask(seq=1, command="r", payload=AT_LIMIT)))
    assert reply.create_ack.ok, reply


@pytest.mark.parametrize(("result", "reason"), [(DEEP, "nested deeper"), (NOT_UTF8, "not valid UTF-8")])
async def test_a_bad_result_is_refused_in_its_ack(streams: Streams, result: bytes, reason: str) -> None:
    task_id = await streams.create()
    worker = await streams.worker()
    await streams.claim(worker)
    event = wpb.WorkerEvent(result=wpb.Result(task_id=task_id, status="COMPLETED", result_json=result))
    ack = (await worker.ask(event)).result_ack
    assert (ack.task_id, ack.ok) == (task_id, False)
    assert "result_json" in ack.error_message and reason in ack.error_message, ack.error_message
