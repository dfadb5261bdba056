"""Producer → worker → result over real streams, and what each conversation step answers."""

from __future__ import annotations

import asyncio
import itertools
import json

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from codeq.core.model import Status
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import START_MS, Streams


async def test_round_trip_create_claim_complete(streams: Streams) -> None:
    producer = await streams.producer()
    create = ppb.CreateTask(seq=7, command="render", payload=b'{"page": 3}', priority=4, max_attempts=3)
    ack = (await producer.ask(ppb.ProducerEvent(create=create))).create_ack
    assert ack.seq == 7 and ack.ok and ack.task_id and not ack.error_message

    worker = await streams.worker()
    task = await streams.claim(worker, commands=["render"], lease_seconds=60)
    assert task.id == ack.task_id and task.command == "render"
    assert json.loads(task.payload) == {"page": 3}
    assert (task.priority, task.max_attempts, task.attempts) == (4, 3, 1)
    assert task.status == "IN_PROGRESS" and task.worker_id == "dev-worker" and task.tenant_id == "dev"
    assert task.lease_until == "2026-01-01T00:01:00Z"  # the fake clock's start + 60 s
    assert task.created_at.ToMilliseconds() == START_MS

    result = wpb.Result(task_id=task.id, status="COMPLETED", result_json=b'{"pixels": 42}')
    reply = await worker.ask(wpb.WorkerEvent(result=result))
    assert reply.result_ack == wpb.ResultAck(task_id=task.id, ok=True)

    principal = streams.app.services.auth.producer("Bearer dev-producer")
    stored, record = await streams.app.services.results.get(principal, task.id)
    assert stored.status is Status.COMPLETED and json.loads(record.result) == {"pixels": 42}
    assert await producer.close() == (grpc.StatusCode.OK, "")
    assert await worker.close() == (grpc.StatusCode.OK, "")


async def test_batches_round_trip_in_order(streams: Streams) -> None:
    producer = await streams.producer()
    creates = [ppb.CreateTask(seq=10 + i, command="render", payload=b'{"i": %d}' % i) for i in range(5)]
    creates.insert(2, ppb.CreateTask(seq=99, command="", payload=b"{}"))
    reply = await producer.ask(ppb.ProducerEvent(create_batch=ppb.CreateTaskBatch(tasks=creates)))
    acks = reply.create_ack_batch.acks
    assert [a.seq for a in acks] == [10, 11, 99, 12, 13, 14]
    assert [a.ok for a in acks] == [True, True, False, True, True, True]
    assert acks[2].error_message == "invalid command"

    worker = await streams.worker()
    batch = (await worker.ask(wpb.WorkerEvent(ready=wpb.Ready(count=10, wait_seconds=1)))).task_batch
    assert sorted(t.id for t in batch.tasks) == sorted(a.task_id for a in acks if a.ok)
    results = [wpb.Result(task_id=t.id, status="COMPLETED", result_json=b"{}") for t in batch.tasks]
    results.insert(1, wpb.Result(task_id="no-such-task", status="COMPLETED", result_json=b"{}"))
    results.append(wpb.Result(task_id=batch.tasks[0].id, status="DONE"))
    reply = await worker.ask(wpb.WorkerEvent(result_batch=wpb.ResultBatch(results=results)))
    acks_out = reply.result_ack_batch.acks
    assert [a.task_id for a in acks_out] == [r.task_id for r in results]
    assert [a.ok for a in acks_out] == [True, False, True, True, True, True, False]
    assert acks_out[1].error_message == "task not found" and acks_out[-1].error_message == "invalid status"


async def test_batches_larger_than_the_service_limit_are_split(streams: Streams) -> None:
    producer = await streams.producer()
    size = streams.app.settings.limits.max_batch_size + 20
    creates = [ppb.CreateTask(seq=i, command="bulk") for i in range(size)]
    acks = (
        await producer.ask(ppb.ProducerEvent(create_batch=ppb.CreateTaskBatch(tasks=creates)))
    ).create_ack_batch
    assert len(acks.acks) == size and all(a.ok for a in acks.acks)


async def test_empty_batches_are_answered_with_empty_batches(streams: Streams) -> None:
    producer = await streams.producer()
    reply = await producer.ask(ppb.ProducerEvent(create_batch=ppb.CreateTaskBatch()))
    assert reply.WhichOneof("event") == "create_ack_batch" and len(reply.create_ack_batch.acks) == 0
    worker = await streams.worker()
    reply = await worker.ask(wpb.WorkerEvent(result_batch=wpb.ResultBatch()))
    assert reply.WhichOneof("event") == "result_ack_batch" and len(reply.result_ack_batch.acks) == 0


async def test_create_fields_and_payload_rules(streams: Streams) -> None:
    producer = await streams.producer()
    seqs = itertools.count(1)  # one seq per create: a repeat would be refused as a duplicate

    async def ack(**fields: object) -> ppb.CreateAck:
        reply = await producer.ask(
            ppb.ProducerEvent(create=ppb.CreateTask(seq=next(seqs), command="render", **fields))
        )
        return reply.create_ack

    assert not (await ack(payload=b"{not json")).ok
    assert (await ack(payload=b"{not json")).error_message == "invalid 'payload' (must be JSON)"
    assert (await ack(payload=b"\xff\xfe")).error_message == "invalid 'payload': not valid UTF-8"
    # Fields are named in the protobuf message's terms (HTTP says `delaySeconds`, `maxAttempts`).
    assert (await ack(delay_seconds=-1)).error_message == "invalid 'delay_seconds' (must be >= 0)"
    assert (await ack(max_attempts=10**6)).error_message == "invalid 'max_attempts' (at most 1000)"
    assert (await ack(priority=10)).error_message == "invalid 'priority' (must be 0..9)"
    assert (await ack(webhook="ftp://x")).error_message == "invalid webhook url"
    first = await ack(idempotency_key="k-1")
    again = await ack(idempotency_key="k-1")
    assert first.ok and again.ok and first.task_id == again.task_id

    empty = await ack()  # an empty payload is JSON null
    later = await ack(run_at=Timestamp(seconds=START_MS // 1000 + 3600), delay_seconds=5)
    principal = streams.app.services.auth.producer("Bearer dev-producer")
    assert (await streams.app.services.tasks.get(principal, empty.task_id)).payload == "null"
    assert (await streams.app.services.tasks.get(principal, later.task_id)).visible_ms == START_MS + 3_600_000


async def test_token_in_metadata(streams: Streams) -> None:
    producer = streams.producer_conn(metadata=[("authorization", "Bearer dev-producer")])
    reply = await producer.ask(ppb.ProducerEvent(hello=ppb.Hello()))
    assert reply.hello_ack == ppb.HelloAck(tenant_id="dev", subject="dev-producer")
    worker = streams.worker_conn(metadata=[("authorization", "Bearer dev-worker")])
    reply = await worker.ask(wpb.WorkerEvent(hello=wpb.Hello(worker_id="w-1")))
    assert reply.hello_ack == wpb.HelloAck(worker_id="dev-worker/w-1", tenant_id="dev")


async def test_worker_instances_own_their_leases(streams: Streams) -> None:
    task_id = await streams.create()
    first = await streams.worker(worker_id="a")
    second = await streams.worker(worker_id="b")
    task = await streams.claim(first)
    assert task.id == task_id and task.worker_id == "dev-worker/a"
    reply = await second.ask(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id=task_id)))
    assert reply.heartbeat_ack == wpb.HeartbeatAck(task_id=task_id, ok=False, error_message="not-owner")
    # The id a HelloAck returned names the same instance again.
    again = streams.worker_conn()
    hello = wpb.Hello(token="dev-worker", worker_id="dev-worker/a")
    assert (await again.ask(wpb.WorkerEvent(hello=hello))).hello_ack.worker_id == "dev-worker/a"
    reply = await again.ask(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id=task_id, extend_seconds=30)))
    assert reply.heartbeat_ack.ok


async def test_nack_heartbeat_abandon(streams: Streams) -> None:
    worker = await streams.worker()
    task_id = await streams.create(max_attempts=2)
    await streams.claim(worker)
    reply = await worker.ask(wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id=task_id, extend_seconds=120)))
    assert reply.heartbeat_ack == wpb.HeartbeatAck(task_id=task_id, ok=True)
    reply = await worker.ask(wpb.WorkerEvent(abandon=wpb.Abandon(task_id=task_id)))
    assert reply.abandon_ack == wpb.AbandonAck(task_id=task_id, ok=True)

    assert (await streams.claim(worker)).attempts == 1  # an abandon gives the delivery back
    # delay 0 keeps the reference's meaning on the stream: the server's backoff (fixed 5 s here).
    reply = await worker.ask(wpb.WorkerEvent(nack=wpb.Nack(task_id=task_id, delay_seconds=0)))
    assert reply.nack_ack == wpb.NackAck(task_id=task_id, ok=True, applied_delay_seconds=5, dlq=False)
    waiting = asyncio.ensure_future(worker.ask(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=5))))
    await asyncio.sleep(0.05)
    streams.clock.advance(6)
    streams.app.runner.poke()
    reply = await asyncio.wait_for(waiting, 5)
    assert reply.task.task.id == task_id and reply.task.task.attempts == 2
    reply = await worker.ask(wpb.WorkerEvent(nack=wpb.Nack(task_id=task_id, delay_seconds=7, reason="boom")))
    assert reply.nack_ack == wpb.NackAck(task_id=task_id, ok=True, dlq=True)


async def test_ready_waits_for_a_task_created_later(streams: Streams) -> None:
    worker = await streams.worker()
    await worker.send(wpb.WorkerEvent(ready=wpb.Ready(commands=["later"], wait_seconds=10)))
    await asyncio.sleep(0.1)
    task_id = await streams.create("later")
    reply = await asyncio.wait_for(worker.recv(), 5)
    assert reply.task.task.id == task_id
