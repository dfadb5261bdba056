"""Wire compatibility with the reference: messages built byte by byte from spec 07's field numbers."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb

# -- a tiny protobuf encoder and decoder -------------------------------------------------

VARINT, LEN = 0, 2


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32 values go out as ten-byte two's complement
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def num(field: int, value: int) -> bytes:
    return varint(field << 3 | VARINT) + varint(value)


def text(field: int, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return varint(field << 3 | LEN) + varint(len(data)) + data


def decode(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in wire order; values are ints (varint) or bytes (length-delimited)."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0

    def read_varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while pos < len(data):
        key = read_varint()
        field, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            fields.append((field, read_varint()))
        else:
            assert wire_type == LEN, wire_type
            size = read_varint()
            fields.append((field, data[pos : pos + size]))
            pos += size
    return fields


def as_int32(value: int | bytes) -> int:
    assert isinstance(value, int)
    return value - (1 << 64) if value >= 1 << 63 else value


# -- hand-encoded bytes → generated classes ----------------------------------------------


def test_create_task_from_reference_bytes() -> None:
    timestamp = num(1, 1_767_225_600) + num(2, 500_000_000)
    create = (
        num(1, 42)
        + text(2, "render")
        + text(3, b'{"a":1}')
        + num(4, 7)
        + text(5, "https://hook.example/x")
        + num(6, 3)
        + text(7, "key-1")
        + text(8, timestamp)
        + num(9, -1)
        + text(10, "00-abc-def-01")
        + text(11, "k=v")
    )
    event = ppb.ProducerEvent.FromString(text(2, create))
    assert event.WhichOneof("event") == "create"
    c = event.create
    assert (c.seq, c.command, c.payload, c.priority, c.webhook) == (
        42,
        "render",
        b'{"a":1}',
        7,
        "https://hook.example/x",
    )
    assert (c.max_attempts, c.idempotency_key, c.delay_seconds) == (3, "key-1", -1)
    assert (c.run_at.seconds, c.run_at.nanos) == (1_767_225_600, 500_000_000)
    assert (c.trace_parent, c.trace_state) == ("00-abc-def-01", "k=v")
    batch = ppb.ProducerEvent.FromString(text(3, text(1, num(1, 1)) + text(1, num(1, 2))))
    assert [t.seq for t in batch.create_batch.tasks] == [1, 2]
    assert ppb.ProducerEvent.FromString(text(1, text(1, "tok"))).hello.token == "tok"


def test_worker_events_from_reference_bytes() -> None:
    hello = wpb.WorkerEvent.FromString(text(1, text(1, "tok") + text(2, "w-1")))
    assert (hello.hello.token, hello.hello.worker_id) == ("tok", "w-1")
    ready = wpb.WorkerEvent.FromString(text(2, text(1, "a") + text(1, "b") + num(2, 60) + num(3, 8)))
    assert list(ready.ready.commands) == ["a", "b"] and ready.ready.lease_seconds == 60
    assert ready.ready.count == 8 and ready.ready.wait_seconds == 0  # no codeq extension: the default
    result = wpb.WorkerEvent.FromString(
        text(3, text(1, "t") + text(2, "FAILED") + text(3, b"{}") + text(4, "x"))
    )
    assert (result.result.task_id, result.result.status, result.result.result_json, result.result.error) == (
        "t",
        "FAILED",
        b"{}",
        "x",
    )
    nack = wpb.WorkerEvent.FromString(text(4, text(1, "t") + num(2, 9) + text(3, "why")))
    assert (nack.nack.task_id, nack.nack.delay_seconds, nack.nack.reason) == ("t", 9, "why")
    heartbeat = wpb.WorkerEvent.FromString(text(5, text(1, "t") + num(2, 30)))
    assert (heartbeat.heartbeat.task_id, heartbeat.heartbeat.extend_seconds) == ("t", 30)
    assert wpb.WorkerEvent.FromString(text(6, text(1, "t"))).abandon.task_id == "t"
    batch = wpb.WorkerEvent.FromString(text(7, text(1, text(1, "a")) + text(1, text(1, "b"))))
    assert [r.task_id for r in batch.result_batch.results] == ["a", "b"]


def test_server_errors_keep_their_swapped_field_numbers() -> None:
    producer = ppb.ServerEvent.FromString(text(3, text(1, "InvalidArgument") + text(2, "unknown-event")))
    assert producer.error == ppb.ServerError(code="InvalidArgument", message="unknown-event")
    worker = wpb.ServerEvent.FromString(text(7, text(1, "unknown-event") + text(2, "InvalidArgument")))
    assert worker.error == wpb.ServerError(code="InvalidArgument", message="unknown-event")


# -- generated classes → bytes the reference expects -------------------------------------


def test_producer_replies_encode_by_spec_numbers() -> None:
    hello = ppb.ServerEvent(hello_ack=ppb.HelloAck(tenant_id="dev", subject="me")).SerializeToString()
    assert decode(hello) == [(1, text(1, "dev") + text(2, "me"))]
    ack = ppb.CreateAck(seq=5, ok=True, task_id="t", error_message="e")
    assert decode(ppb.ServerEvent(create_ack=ack).SerializeToString()) == [(2, ack.SerializeToString())]
    assert decode(ack.SerializeToString()) == [(1, 5), (2, 1), (3, b"t"), (4, b"e")]
    error = ppb.ServerEvent(error=ppb.ServerError(code="C", message="M")).SerializeToString()
    assert decode(error) == [(3, text(1, "C") + text(2, "M"))]
    batch = ppb.ServerEvent(create_ack_batch=ppb.CreateAckBatch(acks=[ack])).SerializeToString()
    assert decode(batch) == [(4, text(1, ack.SerializeToString()))]


def test_task_encodes_by_spec_numbers() -> None:
    task = wpb.Task(
        id="i",
        command="c",
        payload=b"{}",
        priority=2,
        webhook="w",
        max_attempts=5,
        status="IN_PROGRESS",
        worker_id="o",
        lease_until="2026-01-01T00:00:00Z",
        attempts=1,
        tenant_id="t",
    )
    task.created_at.FromMilliseconds(1_500)
    task.updated_at.FromMilliseconds(2_000)
    fields = decode(task.SerializeToString())
    assert fields == [
        (1, b"i"),
        (2, b"c"),
        (3, b"{}"),
        (4, 2),
        (5, b"w"),
        (6, 5),
        (7, b"IN_PROGRESS"),
        (8, b"o"),
        (9, b"2026-01-01T00:00:00Z"),
        (10, 1),
        (11, b"t"),
        (12, num(1, 1) + num(2, 500_000_000)),
        (13, num(1, 2)),
    ]
    assignment = wpb.ServerEvent(task=wpb.TaskAssignment(task=task)).SerializeToString()
    assert decode(assignment) == [(2, text(1, task.SerializeToString()))]
    batch = wpb.ServerEvent(task_batch=wpb.TaskBatch(tasks=[task, task])).SerializeToString()
    assert decode(batch) == [(8, text(1, task.SerializeToString()) * 2)]
    assert decode(wpb.ServerEvent(task_batch=wpb.TaskBatch()).SerializeToString()) == [(8, b"")]


def test_worker_acks_encode_by_spec_numbers() -> None:
    nack = wpb.NackAck(task_id="t", ok=True, error_message="e", applied_delay_seconds=-2, dlq=True)
    fields = decode(nack.SerializeToString())
    assert fields[:3] == [(1, b"t"), (2, 1), (3, b"e")]
    assert fields[3][0] == 4 and as_int32(fields[3][1]) == -2 and fields[4] == (5, 1)
    event = wpb.ServerEvent(nack_ack=nack).SerializeToString()
    assert decode(event) == [(5, nack.SerializeToString())]
    for number, kind, cls in [(3, "result_ack", wpb.ResultAck), (4, "heartbeat_ack", wpb.HeartbeatAck)]:
        ack = cls(task_id="t", ok=True, error_message="e")
        assert decode(ack.SerializeToString()) == [(1, b"t"), (2, 1), (3, b"e")]
        assert decode(wpb.ServerEvent(**{kind: ack}).SerializeToString())[0][0] == number
    abandon = wpb.ServerEvent(abandon_ack=wpb.AbandonAck(task_id="t")).SerializeToString()
    assert decode(abandon) == [(6, text(1, "t"))]
    error = wpb.ServerEvent(error=wpb.ServerError(code="C", message="M")).SerializeToString()
    assert decode(error) == [(7, text(1, "M") + text(2, "C"))]
    hello = wpb.ServerEvent(hello_ack=wpb.HelloAck(worker_id="w", tenant_id="t")).SerializeToString()
    assert decode(hello) == [(1, text(1, "w") + text(2, "t"))]
    acks = wpb.ServerEvent(result_ack_batch=wpb.ResultAckBatch(acks=[wpb.ResultAck(task_id="t")]))
    assert decode(acks.SerializeToString()) == [(9, text(1, text(1, "t")))]


# -- every field of spec 07's tables -----------------------------------------------------

T = FieldDescriptor
_LEASE_TOKEN = ("lease_token", 100, T.TYPE_INT64)  # codeq extension: the fencing token
SPEC: dict[type[Message], list[tuple[str, int, int]]] = {
    ppb.Hello: [("token", 1, T.TYPE_STRING)],
    ppb.CreateTask: [
        ("seq", 1, T.TYPE_UINT64),
        ("command", 2, T.TYPE_STRING),
        ("payload", 3, T.TYPE_BYTES),
        ("priority", 4, T.TYPE_INT32),
        ("webhook", 5, T.TYPE_STRING),
        ("max_attempts", 6, T.TYPE_INT32),
        ("idempotency_key", 7, T.TYPE_STRING),
        ("run_at", 8, T.TYPE_MESSAGE),
        ("delay_seconds", 9, T.TYPE_INT32),
        ("trace_parent", 10, T.TYPE_STRING),
        ("trace_state", 11, T.TYPE_STRING),
    ],
    ppb.CreateTaskBatch: [("tasks", 1, T.TYPE_MESSAGE)],
    ppb.ProducerEvent: [
        ("hello", 1, T.TYPE_MESSAGE),
        ("create", 2, T.TYPE_MESSAGE),
        ("create_batch", 3, T.TYPE_MESSAGE),
    ],
    ppb.HelloAck: [("tenant_id", 1, T.TYPE_STRING), ("subject", 2, T.TYPE_STRING)],
    ppb.CreateAck: [
        ("seq", 1, T.TYPE_UINT64),
        ("ok", 2, T.TYPE_BOOL),
        ("task_id", 3, T.TYPE_STRING),
        ("error_message", 4, T.TYPE_STRING),
    ],
    ppb.ServerError: [("code", 1, T.TYPE_STRING), ("message", 2, T.TYPE_STRING)],
    ppb.CreateAckBatch: [("acks", 1, T.TYPE_MESSAGE)],
    ppb.ServerEvent: [
        ("hello_ack", 1, T.TYPE_MESSAGE),
        ("create_ack", 2, T.TYPE_MESSAGE),
        ("error", 3, T.TYPE_MESSAGE),
        ("create_ack_batch", 4, T.TYPE_MESSAGE),
    ],
    wpb.Task: [
        ("id", 1, T.TYPE_STRING),
        ("command", 2, T.TYPE_STRING),
        ("payload", 3, T.TYPE_BYTES),
        ("priority", 4, T.TYPE_INT32),
        ("webhook", 5, T.TYPE_STRING),
        ("max_attempts", 6, T.TYPE_INT32),
        ("status", 7, T.TYPE_STRING),
        ("worker_id", 8, T.TYPE_STRING),
        ("lease_until", 9, T.TYPE_STRING),
        ("attempts", 10, T.TYPE_INT32),
        ("tenant_id", 11, T.TYPE_STRING),
        ("created_at", 12, T.TYPE_MESSAGE),
        ("updated_at", 13, T.TYPE_MESSAGE),
        _LEASE_TOKEN,
        ("trace_parent", 101, T.TYPE_STRING),  # codeq extension: the stored trace context
        ("trace_state", 102, T.TYPE_STRING),
    ],
    wpb.Hello: [("token", 1, T.TYPE_STRING), ("worker_id", 2, T.TYPE_STRING)],
    # codeq's extensions use numbers the reference does not: wait_seconds (4), lease_token (100).
    wpb.Ready: [
        ("commands", 1, T.TYPE_STRING),
        ("lease_seconds", 2, T.TYPE_INT32),
        ("count", 3, T.TYPE_INT32),
        ("wait_seconds", 4, T.TYPE_INT32),
    ],
    wpb.Result: [
        ("task_id", 1, T.TYPE_STRING),
        ("status", 2, T.TYPE_STRING),
        ("result_json", 3, T.TYPE_BYTES),
        ("error", 4, T.TYPE_STRING),
        _LEASE_TOKEN,
    ],
    wpb.Nack: [
        ("task_id", 1, T.TYPE_STRING),
        ("delay_seconds", 2, T.TYPE_INT32),
        ("reason", 3, T.TYPE_STRING),
        _LEASE_TOKEN,
    ],
    wpb.Heartbeat: [("task_id", 1, T.TYPE_STRING), ("extend_seconds", 2, T.TYPE_INT32), _LEASE_TOKEN],
    wpb.Abandon: [("task_id", 1, T.TYPE_STRING), _LEASE_TOKEN],
    wpb.ResultBatch: [("results", 1, T.TYPE_MESSAGE)],
    wpb.WorkerEvent: [
        (name, number, T.TYPE_MESSAGE)
        for number, name in enumerate(
            ["hello", "ready", "result", "nack", "heartbeat", "abandon", "result_batch"], start=1
        )
    ],
    wpb.HelloAck: [("worker_id", 1, T.TYPE_STRING), ("tenant_id", 2, T.TYPE_STRING)],
    wpb.TaskAssignment: [("task", 1, T.TYPE_MESSAGE)],
    wpb.TaskBatch: [("tasks", 1, T.TYPE_MESSAGE)],
    wpb.ResultAck: [
        ("task_id", 1, T.TYPE_STRING),
        ("ok", 2, T.TYPE_BOOL),
        ("error_message", 3, T.TYPE_STRING),
    ],
    wpb.ResultAckBatch: [("acks", 1, T.TYPE_MESSAGE)],
    wpb.HeartbeatAck: [
        ("task_id", 1, T.TYPE_STRING),
        ("ok", 2, T.TYPE_BOOL),
        ("error_message", 3, T.TYPE_STRING),
    ],
    wpb.NackAck: [
        ("task_id", 1, T.TYPE_STRING),
        ("ok", 2, T.TYPE_BOOL),
        ("error_message", 3, T.TYPE_STRING),
        ("applied_delay_seconds", 4, T.TYPE_INT32),
        ("dlq", 5, T.TYPE_BOOL),
    ],
    wpb.AbandonAck: [
        ("task_id", 1, T.TYPE_STRING),
        ("ok", 2, T.TYPE_BOOL),
        ("error_message", 3, T.TYPE_STRING),
    ],
    wpb.ServerError: [("message", 1, T.TYPE_STRING), ("code", 2, T.TYPE_STRING)],
    wpb.ServerEvent: [
        (name, number, T.TYPE_MESSAGE)
        for number, name in enumerate(
            [
                "hello_ack",
                "task",
                "result_ack",
                "heartbeat_ack",
                "nack_ack",
                "abandon_ack",
                "error",
                "task_batch",
                "result_ack_batch",
            ],
            start=1,
        )
    ],
}


@pytest.mark.parametrize("cls", list(SPEC), ids=lambda cls: cls.DESCRIPTOR.full_name)
def test_every_field_matches_spec_07(cls: Any) -> None:
    descriptor = cls.DESCRIPTOR
    assert descriptor.file.package in ("producerpb", "workerpb")
    actual = [(f.name, f.number, f.type) for f in descriptor.fields]
    assert actual == SPEC[cls]


def test_services_and_methods() -> None:
    for module, service, request, reply in [
        (ppb, "ProducerStream", "producerpb.ProducerEvent", "producerpb.ServerEvent"),
        (wpb, "WorkerStream", "workerpb.WorkerEvent", "workerpb.ServerEvent"),
    ]:
        method = module.DESCRIPTOR.services_by_name[service].methods_by_name["Stream"]
        assert method.input_type.full_name == request and method.output_type.full_name == reply
        assert method.client_streaming and method.server_streaming
