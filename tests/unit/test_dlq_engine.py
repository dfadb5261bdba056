"""DLQ commands in the engine: stale index entries never stall `all`, replays change nothing."""

from __future__ import annotations

from codeq.engine import commands as c
from codeq.engine import keys
from tests.support.harness import TENANT, EngineHarness


def _dead(h: EngineHarness, count: int) -> list[str]:
    ids = [h.create(max_attempts=1).task.id for _ in range(count)]
    for task in h.claim(count=count):
        h.nack(task.id)
    return ids


def test_entries_whose_task_is_gone_are_dropped_not_stalled_on() -> None:
    h = EngineHarness()
    ids = _dead(h, 2)
    # An index entry without its task (as older versions could leave behind), sorting first.
    h.kv.write(
        {keys.dlq(TENANT, "render", "0-gone"): b"", keys.dlq_count(TENANT, "render"): keys.be8(3)}, sync=True
    )
    h.restart()
    assert h.engine.index.dlq_counts[(TENANT, "render")] == 3
    requeue = c.DlqRequeue(now_ms=h.clock.now_ms(), tenant=TENANT, command="render", all=True, limit=1)
    assert h.apply(requeue).count == 0  # the stale entry went first, and is gone now
    assert h.apply(requeue).count == 1
    assert h.apply(requeue).count == 1
    assert h.engine.index.dlq_counts[(TENANT, "render")] == 0
    assert sorted(t.id for t in h.claim(count=5)) == sorted(ids)


def test_a_repeated_purge_changes_nothing_more() -> None:
    h = EngineHarness()
    ids = _dead(h, 3)
    purge = c.DlqPurge(now_ms=h.clock.now_ms(), tenant=TENANT, command="Render", task_ids=ids[:2])
    assert h.apply(purge).count == 2
    assert h.apply(purge).count == 0
    other_tenant = c.DlqPurge(now_ms=h.clock.now_ms(), tenant="globex", command="render", task_ids=ids)
    assert h.apply(other_tenant).count == 0
    h.restart()
    assert h.engine.index.dlq_counts[(TENANT, "render")] == 1
