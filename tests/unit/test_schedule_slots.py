"""Slot arithmetic of schedules (core/schedules.py) and the schedule commands in the engine."""

from __future__ import annotations

from datetime import datetime

import pytest

from codeq.core.errors import Unprocessable
from codeq.core.schedules import (
    Schedule,
    ScheduleSpec,
    jitter_ms,
    slot_after,
    slot_at_or_before,
    slots_to_fire,
    validate_spec,
)
from codeq.engine import commands as c
from codeq.engine import schedules
from tests.support.harness import TENANT, EngineHarness


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_cron_slots_follow_the_time_zone_across_a_dst_change() -> None:
    spec = ScheduleSpec("report", "{}", cron="30 2 * * *", timezone="Europe/Paris")
    # 2026-03-29: Paris moves from +01:00 to +02:00 at 02:00, so 02:30 does not exist that day.
    first = slot_after(spec, ms("2026-03-27T12:00:00+00:00"))
    assert first == ms("2026-03-28T02:30:00+01:00")
    assert slot_at_or_before(spec, first) == first
    assert slot_at_or_before(spec, first - 1) == ms("2026-03-27T02:30:00+01:00")
    after_change = slot_after(spec, ms("2026-03-29T12:00:00+00:00"))
    assert after_change == ms("2026-03-30T02:30:00+02:00")


def test_every_seconds_slots_sit_on_multiples_of_the_interval() -> None:
    spec = ScheduleSpec("report", "{}", every_seconds=300)
    assert slot_after(spec, 299_999) == 300_000 and slot_after(spec, 300_000) == 600_000
    assert slot_at_or_before(spec, 599_999) == 300_000


def test_jitter_is_fixed_by_schedule_and_slot() -> None:
    spec = ScheduleSpec("report", "{}", every_seconds=60, jitter_seconds=30)
    draws = {jitter_ms(TENANT, "a", spec, slot * 60_000) for slot in range(50)}
    assert all(0 <= d < 30_000 for d in draws) and len(draws) > 40
    assert jitter_ms(TENANT, "a", spec, 60_000) == jitter_ms(TENANT, "a", spec, 60_000)
    assert jitter_ms(TENANT, "a", ScheduleSpec("report", "{}", every_seconds=60), 60_000) == 0


@pytest.mark.parametrize(("catch_up", "expected"), [("skip", [600_000]), ("once", [540_000, 600_000])])
def test_catch_up_after_downtime(catch_up: str, expected: list[int]) -> None:
    spec = ScheduleSpec("report", "{}", every_seconds=60, catch_up=catch_up)
    schedule = Schedule(TENANT, "a", spec, 1, created_ms=1, updated_ms=1, last_slot_ms=60_000)
    slots, next_ms = slots_to_fire(schedule, 630_000)
    assert slots == expected and next_ms == 660_000
    assert slots_to_fire(schedule, 60_001 + 59_000) == ([], 120_000)  # not due yet


def test_validation_names_the_field() -> None:
    with pytest.raises(Unprocessable) as both:
        validate_spec(ScheduleSpec("report", "{}", cron="* * * * *", every_seconds=5))
    assert both.value.field == "cron"
    with pytest.raises(Unprocessable) as jitter:
        validate_spec(ScheduleSpec("report", "{}", every_seconds=5, jitter_seconds=-1))
    assert jitter.value.field == "jitterSeconds"


def test_engine_keeps_the_latest_fired_slot_and_survives_restart() -> None:
    h = EngineHarness()
    put = c.PutSchedule(now_ms=h.clock.now_ms(), tenant=TENANT, name="a", command="report", payload="{}",
                        priority=0, max_attempts=0, cron="", timezone="UTC", every_seconds=60,
                        jitter_seconds=0, catch_up="skip")  # fmt: skip
    assert h.apply(c.decode_command(c.encode_command(put))).created
    h.apply(c.ScheduleFired(now_ms=1, tenant=TENANT, name="a", slot_ms=120_000))
    h.apply(c.ScheduleFired(now_ms=2, tenant=TENANT, name="a", slot_ms=60_000))  # late: ignored
    h.restart()
    assert not h.apply(put).created  # identical: unchanged
    (stored,) = schedules.listed(h.kv, TENANT)
    assert stored.last_slot_ms == 120_000 and stored.version == 1
    assert h.apply(c.DeleteSchedule(now_ms=3, tenant=TENANT, name="a")).existed
    assert not h.apply(c.ScheduleFired(now_ms=4, tenant=TENANT, name="a", slot_ms=180_000)).existed
    assert schedules.listed(h.kv, "") == []
