"""The SDK's stream batches: the same bytes as message-by-message building, split only when too large,
and answers matched to their callers, against an in-memory stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from codeq.client import BatchItemError, PayloadTooLarge, ResultSpec, Task, TaskSpec, _pb
from codeq.client._producer_stream import ProducerStream
from codeq.client._worker_stream import WorkerStream
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.support.waiting import eventually

SPECS = [
    TaskSpec(command="render", payload={"page": 1}),
    TaskSpec(command="render", payload=None, priority=9, max_attempts=3, webhook="https://hook.example/x"),
    TaskSpec(command="mail", payload="x" * 300, idempotency_key="k-1", delay_seconds=30),
    TaskSpec(command="m", payload=[1], delay_seconds=-1, run_at=datetime(2030, 1, 2, 3, 4, 5, 6789, UTC)),
]
RESULTS = [
    ResultSpec(task_id="a", status="COMPLETED", result={"ok": True}, lease_token=7),
    ResultSpec(task_id="b", status="FAILED", error="bad input"),
    ResultSpec(task_id="c", status="COMPLETED", result={}),
]


def _create_by_fields(spec: TaskSpec, seq: int) -> ppb.CreateTask:
    """A CreateTask built the way the SDK built them before batches were built in place."""
    create = ppb.CreateTask(
        seq=seq,
        command=spec.command,
        payload=_pb._encode(spec.payload),
        priority=spec.priority,
        webhook=spec.webhook or "",
        max_attempts=spec.max_attempts or 0,
        idempotency_key=spec.idempotency_key or "",
        delay_seconds=spec.delay_seconds or 0,
    )
    if spec.run_at is not None:
        stamp = Timestamp()
        stamp.FromDatetime(spec.run_at)
        create.run_at.CopyFrom(stamp)
    return create


def test_batches_built_in_place_encode_to_the_same_bytes() -> None:
    creates = [_pb.prepare_create(spec, seq) for seq, spec in enumerate(SPECS, 1)]
    expected = ppb.ProducerEvent(
        create_batch=ppb.CreateTaskBatch(tasks=[_create_by_fields(s, n) for n, s in enumerate(SPECS, 1)])
    )
    assert _pb.create_batch_event(creates).SerializeToString() == expected.SerializeToString()
    results = wpb.WorkerEvent(
        result_batch=wpb.ResultBatch(
            results=[
                wpb.Result(
                    task_id=r.task_id,
                    status=r.status,
                    result_json=b"" if r.result is None else _pb._encode(r.result),
                    error=r.error,
                    lease_token=r.lease_token,
                )
                for r in RESULTS
            ]
        )
    )
    prepared = [_pb.prepare_result(r) for r in RESULTS]
    assert _pb.result_batch_event(prepared).SerializeToString() == results.SerializeToString()
    assert [_pb.create_size(c) for c in creates] == [m.ByteSize() for m in expected.create_batch.tasks]


def test_a_create_that_cannot_be_sent_fails_alone_before_batching() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _pb.prepare_create(TaskSpec(command="x", payload=1, run_at=datetime(2030, 1, 1)), 1)
    with pytest.raises(TypeError):
        _pb.prepare_create(TaskSpec(command="x", payload=object()), 1)


def test_stream_timestamps_convert_as_protobuf_does() -> None:
    task = wpb.Task(id="t", command="c", lease_until="2026-12-05T11:50:00Z")
    task.created_at.CopyFrom(Timestamp(seconds=1_764_930_000, nanos=123_456_789))
    converted = _pb.task_from_pb(task)
    assert converted.created_at == task.created_at.ToDatetime(tzinfo=UTC)
    assert converted.updated_at == datetime.fromtimestamp(0, UTC)  # not set
    assert converted.lease_until == datetime(2026, 12, 5, 11, 50, tzinfo=UTC)
    assert _pb.task_from_pb(task).created_at is converted.created_at  # the memo's


class MemoryCall:
    """One stream RPC in memory: each event written is answered by `answer` (server events)."""

    def __init__(self, parse: type[Message], answer: Callable[[Message], Iterable[Message]]) -> None:
        self.parse, self.answer = parse, answer
        self.written: list[bytes] = []
        self.replies: asyncio.Queue[Message | None] = asyncio.Queue()

    async def write(self, event: Message | bytes) -> None:
        data = event if isinstance(event, bytes) else event.SerializeToString()
        self.written.append(data)
        for reply in self.answer(self.parse.FromString(data)):
            self.replies.put_nowait(reply)

    async def read(self) -> Message | None:
        return await self.replies.get()

    async def done_writing(self) -> None:
        self.replies.put_nowait(None)

    def cancel(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _producer_server(event: Message) -> Iterable[ppb.ServerEvent]:
    assert isinstance(event, ppb.ProducerEvent)
    if event.HasField("hello"):
        yield ppb.ServerEvent(hello_ack=ppb.HelloAck(tenant_id="dev"))
    else:
        acks = [ppb.CreateAck(seq=c.seq, ok=True, task_id=f"id-{c.seq}") for c in event.create_batch.tasks]
        yield ppb.ServerEvent(create_ack_batch=ppb.CreateAckBatch(acks=acks))


async def test_a_batch_too_large_for_one_message_goes_in_groups_that_fit() -> None:
    call = MemoryCall(ppb.ProducerEvent, _producer_server)

    async def dial() -> MemoryCall:
        return call

    stream = ProducerStream(dial, "token", timeout=5, max_message_bytes=4096)
    specs = [TaskSpec(command="c", payload="x" * 1000) for _ in range(9)]
    specs[4] = TaskSpec(command="c", payload="y" * 5000)  # too large even alone
    outcomes = await stream.create_batch(specs)
    assert [isinstance(o, Task) for o in outcomes] == [True] * 4 + [False] + [True] * 4
    assert isinstance(outcomes[4], BatchItemError) and outcomes[4].index == 4
    sent = [ppb.ProducerEvent.FromString(data) for data in call.written[1:]]  # after the hello
    assert [len(event.create_batch.tasks) for event in sent] == [3, 1, 3, 1]
    assert all(len(data) <= 4096 for data in call.written)
    small = await stream.create_batch([TaskSpec(command="c", payload=n) for n in range(50)])
    assert len(call.written) == 6 and [t.id for t in small if isinstance(t, Task)][-1].startswith("id-")
    with pytest.raises(PayloadTooLarge):
        await stream.create(TaskSpec(command="c", payload="z" * 5000))
    await stream.aclose()


async def test_answers_reach_their_callers_whatever_order_they_come_in() -> None:
    held: list[wpb.WorkerEvent] = []

    def server(event: Message) -> Iterable[wpb.ServerEvent]:
        assert isinstance(event, wpb.WorkerEvent)
        if event.HasField("hello"):
            yield wpb.ServerEvent(hello_ack=wpb.HelloAck(worker_id="w"))
        else:
            held.append(event)  # answered by hand below

    call = MemoryCall(wpb.WorkerEvent, server)

    async def dial() -> MemoryCall:
        return call

    stream = WorkerStream(dial, "token", timeout=5, max_message_bytes=1 << 20)
    first = asyncio.ensure_future(stream.submit_results([RESULTS[0], RESULTS[1]]))
    await eventually(lambda: len(held) == 1)
    gave_up = asyncio.ensure_future(stream.submit_results([RESULTS[0]]))  # "a" again
    await eventually(lambda: len(held) == 2)
    gave_up.cancel()
    again = asyncio.ensure_future(stream.submit_results([RESULTS[0]]))  # and a third time
    await eventually(lambda: len(held) == 3)

    def acks(*answers: tuple[str, bool]) -> wpb.ServerEvent:
        batch = [
            wpb.ResultAck(task_id=t, ok=ok, error_message="" if ok else "not-owner") for t, ok in answers
        ]
        return wpb.ServerEvent(result_ack_batch=wpb.ResultAckBatch(acks=batch))

    # The server answers "b" first, then the three "a" in the order they were sent.
    call.replies.put_nowait(acks(("b", True)))
    call.replies.put_nowait(acks(("a", True), ("a", True), ("a", False)))
    outcomes = await first
    assert [o.task_id for o in outcomes] == ["a", "b"]  # type: ignore[union-attr]
    (last,) = await again
    assert type(last).__name__ == "NotOwner"  # the third answer, not the one its canceller left
    await stream.aclose()


def test_memo_limits_hold() -> None:
    for n in range(_pb._MEMO_LIMIT + 5):
        _pb._datetime(Timestamp(seconds=n))
    assert len(_pb._stamps) <= _pb._MEMO_LIMIT
    assert _pb._datetime(Timestamp(seconds=5)) == datetime.fromtimestamp(0, UTC) + timedelta(seconds=5)


async def test_an_empty_batch_sends_nothing() -> None:
    call = MemoryCall(ppb.ProducerEvent, _producer_server)

    async def dial() -> MemoryCall:
        return call

    stream = ProducerStream(dial, "token", timeout=5, max_message_bytes=4096)
    assert await stream.create_batch([]) == []
    assert call.written == []  # not even a hello: the stream was never needed
    await stream.aclose()
