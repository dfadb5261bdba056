"""A producer seq used twice on one stream is refused, never a second task (spec 07 gap 7)."""

from __future__ import annotations

import grpc

from codeq.transport.grpc.producer import SeenSeqs
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Streams


def create(seq: int) -> ppb.CreateTask:
    return ppb.CreateTask(seq=seq, command="render", payload=b"{}")


async def queued(streams: Streams) -> int:
    """How many tasks wait in the queue (claims them all)."""
    worker = await streams.worker()
    reply = await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=50, wait_seconds=1)))
    await worker.close()
    return len(reply.task_batch.tasks)


async def test_a_seq_sent_twice_gets_an_error_ack_and_no_second_task(streams: Streams) -> None:
    conn = await streams.producer()
    first = (await conn.ask(ppb.ProducerEvent(create=create(7)))).create_ack
    again = (await conn.ask(ppb.ProducerEvent(create=create(7)))).create_ack
    assert first.ok and first.seq == 7
    assert again == ppb.CreateAck(seq=7, ok=False, error_message="duplicate seq 7 on this stream")
    assert await conn.close() == (grpc.StatusCode.OK, "")
    assert await queued(streams) == 1


async def test_duplicates_in_and_across_batches_are_refused_one_by_one(streams: Streams) -> None:
    conn = await streams.producer()
    await conn.ask(ppb.ProducerEvent(create=create(2)))
    batch = ppb.CreateTaskBatch(tasks=[create(1), create(2), create(3), create(3)])
    acks = (await conn.ask(ppb.ProducerEvent(create_batch=batch))).create_ack_batch.acks
    assert [(a.seq, a.ok) for a in acks] == [(1, True), (2, False), (3, True), (3, False)]
    assert await conn.close() == (grpc.StatusCode.OK, "")
    assert await queued(streams) == 3


async def test_another_stream_may_reuse_a_seq(streams: Streams) -> None:
    for _ in range(2):
        conn = await streams.producer()
        assert (await conn.ask(ppb.ProducerEvent(create=create(1)))).create_ack.ok
        await conn.close()
    assert await queued(streams) == 2


def test_seen_seqs_keeps_only_the_reordering_window() -> None:
    seen = SeenSeqs()
    assert [seen.first_use(s) for s in (3, 1, 2, 2, 5, 4, 0, 0)] == [True] * 3 + [False] + [True] * 4
    assert not seen.first_use(5)
    assert seen._above == set()  # 1..5 all seen: held as the floor alone
