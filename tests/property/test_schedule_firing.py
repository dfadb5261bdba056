"""Schedule firing through the real ScheduleService on a fake clock, across restarts and leader
changes that may fall between a slot's create and its record (the fire-then-record window)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from codeq.auth.principal import SCOPE_ADMIN, Principal
from codeq.core.errors import NotLeader
from codeq.core.schedules import ScheduleSpec, jitter_ms, slot_at_or_before
from codeq.engine import commands as c
from codeq.service.node import Node, Shard
from codeq.service.schedules import ScheduleService
from codeq.service.waiters import Waiters
from tests.support.harness import TENANT, EngineHarness

ADMIN = Principal("ops", TENANT, frozenset({SCOPE_ADMIN}), ("*",), is_admin=True, is_worker=False)
STEP_MS = 60_000


class _Replicator:
    """Applies in place like a one-node group; can lose leadership just before a record."""

    def __init__(self, harness: EngineHarness) -> None:
        self.harness = harness
        self.is_leader = True
        self.drop_next_record = False
        self.created: dict[int, int] = {}  # slot -> tasks its creates made (replays excluded)

    async def submit(self, command: Any) -> Any:
        if isinstance(command, c.ScheduleFired) and self.drop_next_record:
            self.drop_next_record = False
            self.is_leader = False  # the leader dies between the create and its record
            raise NotLeader("leadership lost")
        outcome = self.harness.apply(command)
        if isinstance(command, c.Create) and not outcome.replay:
            slot = int(command.idempotency_key.split(":")[2])  # schedule:<name>:<slot ms>
            self.created[slot] = self.created.get(slot, 0) + 1
        return outcome


def _service(harness: EngineHarness, replicator: _Replicator) -> ScheduleService:
    """A fresh leader: a new engine recovered from the replicated store, a new service."""
    harness.restart()
    node = Node(Waiters())
    node.shards.append(Shard(0, harness.engine, replicator))  # type: ignore[arg-type]
    return ScheduleService(node, harness.clock)


steps = st.lists(
    st.tuples(st.integers(0, 400), st.booleans(), st.booleans()),  # (seconds, die before record, failover)
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, catch_up=st.sampled_from(["skip", "once"]), jitter=st.sampled_from([0, 20]))
def test_no_slot_fires_twice_and_the_policy_skips_none(
    steps: list[tuple[int, bool, bool]], catch_up: str, jitter: int
) -> None:
    asyncio.run(_run(steps, catch_up, jitter))


async def _run(steps: list[tuple[int, bool, bool]], catch_up: str, jitter: int) -> None:
    harness = EngineHarness()
    replicator = _Replicator(harness)
    service = _service(harness, replicator)
    spec = ScheduleSpec("report", "{}", every_seconds=60, jitter_seconds=jitter, catch_up=catch_up)
    await service.put(ADMIN, "nightly", spec)
    created_ms = harness.clock.now_ms()
    fired_before: set[int] = set()
    for seconds, die, failover in steps:
        harness.clock.advance(seconds)
        if failover or not replicator.is_leader:
            replicator.is_leader = True
            service = _service(harness, replicator)
        replicator.drop_next_record = die
        try:
            await service.tick()
        except NotLeader:  # the slot stays unrecorded: the next leader fires it again, as a replay
            fired_before = set(replicator.created)
            continue
        _check(replicator, spec, created_ms, harness.clock.now_ms(), fired_before)
        fired_before = set(replicator.created)


def _check(
    replicator: _Replicator, spec: ScheduleSpec, created_ms: int, now_ms: int, before: set[int]
) -> None:
    assert all(count == 1 for count in replicator.created.values())  # never a slot twice
    fired = set(replicator.created)
    assert all(slot % STEP_MS == 0 and created_ms <= slot <= now_ms for slot in fired)
    latest = slot_at_or_before(spec, now_ms)
    if latest + jitter_ms(TENANT, "nightly", spec, latest) > now_ms:
        latest -= STEP_MS  # its jittered time has not come yet
    if latest < created_ms:
        return
    assert latest in fired  # after every completed pass, the current slot has its task
    missed = latest - STEP_MS
    if spec.catch_up == "once" and missed >= created_ms and before and max(before) < missed:
        assert missed in fired  # a gap: the latest missed slot fired once too
    new = fired - before
    if spec.catch_up == "skip":
        assert new <= {latest}  # skip: a pass after downtime adds only the current slot
