"""Cancel in the engine: waiting tasks finish at once, leased ones on the worker's next call."""

from __future__ import annotations

import pytest

from codeq.core.errors import NotFound, WrongState
from codeq.core.model import Status
from codeq.engine import commands as c
from codeq.engine import keys
from tests.support.harness import TENANT, WORKER, EngineHarness


def test_a_ready_task_finishes_cancelled_with_a_result_record() -> None:
    h = EngineHarness()
    task_id = h.create().task.id
    outcome = h.cancel(task_id)
    assert outcome.task.status is Status.CANCELLED
    assert h.claim() == []
    record = h.engine.find_result(task_id)
    assert record is not None and record.status is Status.CANCELLED and record.error == "cancelled"
    assert h.kv.get(keys.live(task_id)) is None
    assert h.engine.index.queues[(TENANT, "render")].ready == 0


def test_a_delayed_task_is_removed_from_the_delayed_set() -> None:
    h = EngineHarness()
    task_id = h.create(visible_ms=h.clock.now_ms() + 60_000).task.id
    assert h.cancel(task_id).task.status is Status.CANCELLED
    h.clock.advance(120)
    h.tick()
    assert h.claim() == []
    assert h.engine.index.queues[(TENANT, "render")].delayed == 0


def test_cancelling_twice_is_a_no_op_and_survives_a_restart() -> None:
    h = EngineHarness()
    task_id = h.create().task.id
    h.cancel(task_id)
    ops, outcome, events = h.engine.apply(c.Cancel(now_ms=h.clock.now_ms(), tenant=TENANT, task_id=task_id))
    assert outcome.task.status is Status.CANCELLED and ops == {} and events == []
    h.restart()
    assert h.engine.find_task(task_id, TENANT).status is Status.CANCELLED
    assert h.claim() == []


def test_finished_tasks_refuse_and_other_tenants_do_not_see_it() -> None:
    h = EngineHarness()
    done = h.create().task.id
    h.claim()
    h.complete(done)
    with pytest.raises(WrongState, match="task already finished"):
        h.cancel(done)
    other = h.create().task.id
    with pytest.raises(NotFound):
        h.cancel(other, tenant="globex")
    with pytest.raises(NotFound):
        h.cancel("no-such-task")


def test_a_leased_task_is_marked_then_finished_by_its_heartbeat() -> None:
    h = EngineHarness()
    task_id = h.create().task.id
    h.claim()
    marked = h.cancel(task_id).task
    assert marked.status is Status.IN_PROGRESS and marked.cancel_requested
    assert h.cancel(task_id).task.cancel_requested  # idempotent while it waits
    h.restart()  # the mark is stored with the live task
    beat = h.apply(
        c.Heartbeat(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=task_id, extend_ms=1000)
    )
    assert beat.task.status is Status.CANCELLED
    assert h.engine.find_task(task_id, TENANT).status is Status.CANCELLED
    assert h.engine.index.queues[(TENANT, "render")].in_progress == 0


@pytest.mark.parametrize("call", ["result", "nack", "abandon"])
def test_the_workers_next_call_finishes_a_cancel_requested_task(call: str) -> None:
    h = EngineHarness()
    task_id = h.create(max_attempts=1).task.id
    h.claim()
    h.cancel(task_id)
    if call == "result":
        outcome = h.complete(task_id)
        assert outcome.record.status is Status.CANCELLED and outcome.task.status is Status.CANCELLED
    elif call == "nack":
        outcome = h.nack(task_id)
        assert outcome.cancelled and not outcome.dead_lettered
    else:
        h.apply(c.Abandon(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=task_id))
    assert h.engine.find_task(task_id, TENANT).status is Status.CANCELLED
    assert h.engine.index.dlq_counts.get((TENANT, "render"), 0) == 0
    h.clock.advance(3600)
    h.tick()
    assert h.claim() == []


def test_another_worker_still_gets_not_owner() -> None:
    h = EngineHarness()
    task_id = h.create().task.id
    h.claim()
    h.cancel(task_id)
    with pytest.raises(Exception, match="not-owner"):
        h.complete(task_id, worker="worker-2")
    assert h.engine.find_task(task_id, TENANT).status is Status.IN_PROGRESS


def test_lease_expiry_finishes_a_cancel_requested_task_instead_of_retrying() -> None:
    h = EngineHarness()
    task_id = h.create().task.id
    h.claim(lease_ms=1000)
    h.cancel(task_id)
    h.clock.advance(5)
    h.tick()
    assert h.engine.find_task(task_id, TENANT).status is Status.CANCELLED
    h.clock.advance(3600)
    h.tick()
    assert h.claim() == []


def test_cancel_racing_a_claim_in_both_orders() -> None:
    first = EngineHarness()
    task_id = first.create().task.id
    first.cancel(task_id)
    assert first.claim() == []  # cancel first: nothing to claim

    second = EngineHarness()
    task_id = second.create().task.id
    assert [t.id for t in second.claim()] == [task_id]
    assert second.cancel(task_id).task.cancel_requested  # claim first: the worker learns next call


def test_cancel_racing_a_result_in_both_orders() -> None:
    first = EngineHarness()
    task_id = first.create().task.id
    first.claim()
    first.complete(task_id)
    with pytest.raises(WrongState):
        first.cancel(task_id)
    assert first.engine.find_task(task_id, TENANT).status is Status.COMPLETED

    second = EngineHarness()
    task_id = second.create().task.id
    second.claim()
    second.cancel(task_id)
    assert second.complete(task_id).record.status is Status.CANCELLED
    with pytest.raises(WrongState):  # the worker's retry of its result
        second.complete(task_id)


def test_a_webhook_task_owes_a_cancelled_callback() -> None:
    h = EngineHarness()
    task_id = h.create(webhook="http://example.test/hook").task.id
    h.cancel(task_id)
    entries = list(h.engine.outbox.entries.values())
    assert [(e.task_id, e.status, e.error) for e in entries] == [(task_id, "CANCELLED", "cancelled")]


def test_retention_removes_a_cancelled_task_like_a_completed_one() -> None:
    h = EngineHarness()
    task_id = h.create().task.id
    h.cancel(task_id)
    h.clock.advance(2 * 86_400)
    h.tick()
    with pytest.raises(NotFound):
        h.engine.find_task(task_id, TENANT)
    assert list(h.kv.scan(keys.FINISHED_BY_STATE, b"Q0")) == []
