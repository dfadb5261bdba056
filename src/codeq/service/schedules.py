"""Durable schedules: admin use cases, and the leader-only runner that fires their slots.

Schedules are engine commands on shard 0 (like topics), so they survive restarts and
replicate. Firing is fire-then-record: create the slot's task under an idempotency key derived
from (schedule, slot), then record the slot as fired. A leader that dies between the two leaves
the slot unrecorded; the next leader fires it again and the key makes that a replay, not a
second task.
"""

from __future__ import annotations

import logging

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import NotFound, PayloadTooLarge, Unprocessable
from codeq.core.schedules import (
    Schedule,
    ScheduleSpec,
    idempotency_key,
    slots_to_fire,
    validate_identity,
    validate_spec,
)
from codeq.engine import commands as c
from codeq.engine import schedules
from codeq.engine.shards import new_task_id
from codeq.service.idempotency import replay_elsewhere
from codeq.service.node import Node, ShardHandle
from codeq.service.policy import Policy

log = logging.getLogger("codeq.schedules")


class ScheduleService:
    def __init__(self, node: Node, clock: Clock, policy: Policy | None = None) -> None:
        self.node = node
        self.clock = clock
        self.policy = policy or Policy()
        self.fired = 0  # tasks created by this node's firings (replays included)

    @property
    def _home(self) -> ShardHandle:
        return self.node.shards[0]  # schedules live on the first shard, like topics

    # -- administration ---------------------------------------------------------------------

    async def put(self, principal: Principal, name: str, spec: ScheduleSpec) -> tuple[Schedule, bool]:
        """Create or update; returns the schedule and whether it was created."""
        principal.require_admin()
        validate_identity(principal.tenant, name)
        spec = validate_spec(spec)  # checked before proposing: a 422 costs no write
        self._check_task_limits(spec)
        command = c.PutSchedule(
            now_ms=self.clock.now_ms(),
            tenant=principal.tenant,
            name=name,
            command=spec.command,
            payload=spec.payload,
            priority=spec.priority,
            max_attempts=spec.max_attempts,
            cron=spec.cron,
            timezone=spec.timezone,
            every_seconds=spec.every_seconds,
            jitter_seconds=spec.jitter_seconds,
            catch_up=spec.catch_up,
        )
        outcome = await self._home.submit(command)
        return outcome.schedule, outcome.created

    def _check_task_limits(self, spec: ScheduleSpec) -> None:
        """The limits a create of the same task would meet, checked once here, not at each firing."""
        if len(spec.payload) > self.policy.max_payload_bytes:
            raise PayloadTooLarge(f"payload exceeds {self.policy.max_payload_bytes} bytes", field="payload")
        if spec.max_attempts > self.policy.max_attempts:
            raise Unprocessable(
                f"invalid maxAttempts: at most {self.policy.max_attempts}", field="maxAttempts"
            )

    async def get(self, principal: Principal, name: str) -> Schedule:
        principal.require_admin()
        validate_identity(principal.tenant, name)
        schedule: Schedule | None = await self._home.read("find_schedule", principal.tenant, name)
        if schedule is None:
            raise NotFound(f'schedule "{name}" not found')
        return schedule

    async def list(self, principal: Principal) -> list[Schedule]:
        principal.require_admin()
        found: list[Schedule] = await self._home.read("schedules", principal.tenant)
        return found

    async def delete(self, principal: Principal, name: str) -> bool:
        """Idempotent: returns whether the schedule existed."""
        principal.require_admin()
        validate_identity(principal.tenant, name)
        command = c.DeleteSchedule(now_ms=self.clock.now_ms(), tenant=principal.tenant, name=name)
        return (await self._home.submit(command)).existed

    # -- firing -----------------------------------------------------------------------------

    async def tick(self) -> int | None:
        """Fire every due slot if this node leads shard 0; returns when the next slot is due."""
        if not self.node.runs_here(0):
            return None
        home = self.node.local(0)
        now_ms = self.clock.now_ms()
        wake: list[int] = []
        for schedule in schedules.listed(home.engine.store, ""):
            slots, next_ms = slots_to_fire(schedule, now_ms)
            for slot in slots:
                await self._fire(schedule, slot, now_ms)
            wake.append(next_ms)
        return min(wake) if wake else None

    async def _fire(self, schedule: Schedule, slot_ms: int, now_ms: int) -> None:
        create = self._create(schedule, slot_ms, now_ms)
        shard = self.node.shard_for(create.task_id)
        if not (shard.is_leader and self.node.runs_here(0)):
            return  # the lease, checked before each visible action: the next leader fires it
        if await replay_elsewhere(self.node, create.tenant, create.idempotency_key, now_ms) is None:
            await shard.submit(create)
        self.fired += 1
        record = c.ScheduleFired(now_ms=now_ms, tenant=schedule.tenant, name=schedule.name, slot_ms=slot_ms)
        await self._home.submit(record)

    def _create(self, schedule: Schedule, slot_ms: int, now_ms: int) -> c.Create:
        spec = schedule.spec
        key = idempotency_key(schedule.name, slot_ms)
        return c.Create(
            now_ms=now_ms,
            task_id=new_task_id(len(self.node.shards), tenant=schedule.tenant, idempotency_key=key),
            tenant=schedule.tenant,
            command=spec.command,
            payload=spec.payload,
            priority=spec.priority,
            max_attempts=spec.max_attempts or self.policy.max_attempts_default,
            idempotency_key=key,
        )
