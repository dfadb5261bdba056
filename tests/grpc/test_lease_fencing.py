"""Fenced leases on the worker stream: a late report under an expired lease is refused."""

from __future__ import annotations

from typing import Any

from codeq.service.maintenance import Maintenance
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Conn, Streams

LEASE_SECONDS = 10
BACKOFF_SECONDS = 5  # the fixed backoff of the test settings


async def _expire_and_requeue(streams: Streams) -> None:
    streams.clock.advance(LEASE_SECONDS + 1)
    await Maintenance(streams.app.node, streams.clock).tick()
    streams.clock.advance(BACKOFF_SECONDS + 1)


async def _two_claims(streams: Streams, first: Conn, second: Conn) -> tuple[Any, Any]:
    """`first` claims the task, its lease runs out, `second` claims it again."""
    await streams.create()
    stale = await streams.claim(first, lease_seconds=LEASE_SECONDS)
    await _expire_and_requeue(streams)
    current = await streams.claim(second, lease_seconds=LEASE_SECONDS)
    assert stale.id == current.id and 0 < stale.lease_token < current.lease_token
    return stale, current


def _result(task: Any, by: str) -> wpb.WorkerEvent:
    body = f'{{"by": "{by}"}}'.encode()
    return wpb.WorkerEvent(
        result=wpb.Result(task_id=task.id, status="COMPLETED", result_json=body, lease_token=task.lease_token)
    )


async def test_same_worker_id_late_result_is_refused_and_the_new_holders_accepted(
    streams: Streams,
) -> None:
    first = await streams.worker(worker_id="pod")
    second = await streams.worker(worker_id="pod")
    stale, current = await _two_claims(streams, first, second)
    late = await first.ask(_result(stale, "first"))
    assert late.result_ack == wpb.ResultAck(task_id=stale.id, ok=False, error_message="not-owner")
    fresh = await second.ask(_result(current, "second"))
    assert fresh.result_ack == wpb.ResultAck(task_id=current.id, ok=True)
    record = streams.app.node.shard_for(current.id).engine.find_result(current.id)
    assert record is not None and record.result == '{"by": "second"}'


async def test_two_worker_instances_late_result_is_refused(streams: Streams) -> None:
    first = await streams.worker(worker_id="a")
    second = await streams.worker(worker_id="b")
    stale, current = await _two_claims(streams, first, second)
    late = await first.ask(_result(stale, "first"))
    assert late.result_ack.error_message == "not-owner"
    assert (await second.ask(_result(current, "second"))).result_ack.ok


async def test_stale_heartbeat_nack_abandon_and_batched_results_are_refused(streams: Streams) -> None:
    worker = await streams.worker()
    stale, current = await _two_claims(streams, worker, worker)
    token = stale.lease_token
    events = [
        wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id=stale.id, lease_token=token)),
        wpb.WorkerEvent(nack=wpb.Nack(task_id=stale.id, lease_token=token)),
        wpb.WorkerEvent(abandon=wpb.Abandon(task_id=stale.id, lease_token=token)),
    ]
    for event, kind in zip(events, ("heartbeat_ack", "nack_ack", "abandon_ack"), strict=True):
        ack = getattr(await worker.ask(event), kind)
        assert (ack.ok, ack.error_message) == (False, "not-owner"), kind
    batch = wpb.ResultBatch(results=[_result(stale, "late").result])
    reply = await worker.ask(wpb.WorkerEvent(result_batch=batch))
    assert [a.error_message for a in reply.result_ack_batch.acks] == ["not-owner"]
    beat = wpb.Heartbeat(task_id=current.id, lease_token=current.lease_token)
    assert (await worker.ask(wpb.WorkerEvent(heartbeat=beat))).heartbeat_ack.ok
