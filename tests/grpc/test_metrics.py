"""Stream messages are counted and timed by stream and kind on `/metrics` (issue 13 item 5)."""

from __future__ import annotations

from codeq.transport.grpc.observe import event_kind
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Streams


async def test_received_messages_are_counted_by_stream_and_kind(streams: Streams) -> None:
    producer = await streams.producer()
    creates = [ppb.CreateTask(seq=i, command="render", payload=b"{}") for i in range(3)]
    await producer.ask(ppb.ProducerEvent(create_batch=ppb.CreateTaskBatch(tasks=creates)))
    worker = await streams.worker()
    task = await streams.claim(worker, commands=["render"], lease_seconds=60)
    await worker.ask(
        wpb.WorkerEvent(result=wpb.Result(task_id=task.id, status="COMPLETED", result_json=b"{}"))
    )
    await producer.close()
    await worker.close()
    text = streams.app.metrics.render()[0].decode()
    for line in (
        'codeq_grpc_messages_received_total{kind="create_batch",stream="producer"} 1.0',
        'codeq_grpc_messages_received_total{kind="ready",stream="worker"} 1.0',
        'codeq_grpc_messages_received_total{kind="result",stream="worker"} 1.0',
        'codeq_grpc_message_duration_seconds_count{kind="create_batch",stream="producer"} 1.0',
    ):
        assert line in text, line


def test_the_kind_is_read_from_the_events_tag() -> None:
    assert event_kind("worker", wpb.WorkerEvent(result_batch=wpb.ResultBatch()).SerializeToString()) == (
        "result_batch"
    )
    assert event_kind("producer", ppb.ProducerEvent(create=ppb.CreateTask(seq=1)).SerializeToString()) == (
        "create"
    )
    assert event_kind("producer", b"\xff\x01") == "unknown"
    assert event_kind("worker", b"") == "empty"
