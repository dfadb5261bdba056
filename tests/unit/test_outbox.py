"""The callback outbox: staged with the finish, settled by commands, due entries found by heap."""

from __future__ import annotations

from codeq.engine import commands as c
from tests.support.harness import EngineHarness


def _finish_with_webhook(h: EngineHarness) -> str:
    task_id = h.create(webhook="https://hooks.example.com/x").task.id
    h.claim()
    h.complete(task_id)
    return task_id


def test_entries_survive_restart_and_come_due_in_order() -> None:
    h = EngineHarness()
    first = _finish_with_webhook(h)
    h.clock.advance(1)
    second = _finish_with_webhook(h)
    h.restart()
    outbox = h.engine.outbox
    due = outbox.take_due(h.clock.now_ms(), 10)
    assert [e.task_id for e in due] == [first, second]
    assert due[0].status == "COMPLETED" and due[0].result == '{"ok":true}'
    assert outbox.take_due(h.clock.now_ms(), 10) == []  # popped: the delivering node holds them


def test_outcomes_reschedule_or_drop_and_stale_heap_nodes_are_skipped() -> None:
    h = EngineHarness()
    _finish_with_webhook(h)
    outbox = h.engine.outbox
    [entry] = outbox.take_due(h.clock.now_ms(), 10)
    retry_at = h.clock.now_ms() + 2000
    h.apply(
        c.WebhookOutcome(
            now_ms=h.clock.now_ms(), delivery_id=entry.delivery_id, delivered=False, next_ms=retry_at
        )
    )
    outbox.put_back(entry)  # as if an attempt's outcome had also failed to be recorded
    assert outbox.take_due(h.clock.now_ms(), 10) == []  # not due until the retry time
    h.clock.advance(2)
    [again] = outbox.take_due(h.clock.now_ms(), 10)
    assert again.attempts == 1 and outbox.take_due(h.clock.now_ms(), 10) == []
    done = c.WebhookOutcome(now_ms=h.clock.now_ms(), delivery_id=entry.delivery_id, delivered=True)
    assert h.apply(done).found and not h.apply(done).found  # a replayed outcome changes nothing
    h.restart()
    assert h.engine.outbox.entries == {}


def test_no_webhook_no_entry_and_a_dead_letter_owes_one() -> None:
    h = EngineHarness()
    plain = h.create().task.id
    h.claim()
    h.complete(plain)
    assert h.engine.outbox.entries == {}
    hooked = h.create(webhook="https://hooks.example.com/x", max_attempts=1).task.id
    h.claim()
    h.nack(hooked, reason="broken")
    [entry] = h.engine.outbox.entries.values()
    assert (entry.task_id, entry.status, entry.error) == (hooked, "FAILED", "broken")
