"""Retention: per-state periods, nothing live removed, and stale entries after a DLQ requeue."""

from __future__ import annotations

from codeq.core.backoff import BackoffPolicy
from codeq.engine import commands as c
from codeq.engine.engine import EngineConfig
from tests.support.harness import TENANT, EngineHarness

HOUR = 3_600_000


def _harness() -> EngineHarness:
    return EngineHarness(
        EngineConfig(
            backoff=BackoffPolicy("fixed", 5, 900),
            retention_ms=10 * HOUR,
            retention_completed_ms=1 * HOUR,
            retention_dead_lettered_ms=100 * HOUR,
        )
    )


def _exists(h: EngineHarness, task_id: str) -> bool:
    try:
        h.engine.find_task(task_id, TENANT)
    except Exception:
        return False
    return True


def test_each_terminal_state_keeps_its_own_period_and_live_tasks_stay() -> None:
    h = _harness()
    done, failed, dead, live = (h.create(max_attempts=1).task.id for _ in range(4))
    h.claim(count=3)
    h.complete(done)
    h.complete(failed, status="FAILED", result="", error="bad")
    h.nack(dead)
    h.clock.advance(ms=1000 * HOUR)
    h.tick()
    assert not any(_exists(h, t) for t in (done, failed, dead))
    assert _exists(h, live)  # pending for 1000 hours: never touched by retention

    h = _harness()
    done, failed, dead = (h.create(max_attempts=1).task.id for _ in range(3))
    h.claim(count=3)
    h.complete(done)
    h.complete(failed, status="FAILED", result="", error="bad")
    h.nack(dead)
    h.clock.advance(ms=2 * HOUR)
    h.tick()
    assert [_exists(h, t) for t in (done, failed, dead)] == [False, True, True]
    h.clock.advance(ms=9 * HOUR)
    h.tick()
    assert [_exists(h, t) for t in (failed, dead)] == [False, True]
    assert h.engine.find_result(done) is None and h.engine.find_result(failed) is None


def test_an_entry_left_by_an_earlier_finish_does_not_delete_the_later_one() -> None:
    h = EngineHarness(EngineConfig(backoff=BackoffPolicy("fixed", 5, 900), retention_ms=10 * HOUR))
    task_id = h.create(max_attempts=1).task.id
    h.claim()
    h.nack(task_id)
    h.clock.advance(ms=5 * HOUR)
    requeue = c.DlqRequeue(now_ms=h.clock.now_ms(), tenant=TENANT, command="render", task_ids=[task_id])
    assert h.apply(requeue).count == 1
    h.claim()
    h.complete(task_id)
    h.clock.advance(ms=6 * HOUR)  # the first finish's period is over, the second's is not
    h.tick()
    assert h.engine.find_task(task_id, TENANT).status.value == "COMPLETED"
    h.clock.advance(ms=5 * HOUR)
    h.tick()
    assert not _exists(h, task_id)


def test_per_state_retention_is_configurable_and_checked() -> None:
    from codeq.app.wiring import engine_config
    from codeq.config import ConfigError, load_settings

    settings = load_settings(environ={"RETENTION_DEAD_LETTERED_SECONDS": "604800"}, overrides={"dev": True})
    config = engine_config(settings)
    assert config.retention_dead_lettered_ms == 604_800_000 and config.retention_completed_ms == 0
    try:
        load_settings(environ={"RETENTION_FAILED_SECONDS": "-1"}, overrides={"dev": True})
    except ConfigError as exc:
        assert exc.problems == ["retentionFailedSeconds must not be negative, got -1"]
    else:
        raise AssertionError("a negative retention was accepted")
