"""Applying schedule commands: schedules live in the store on shard 0, so they replicate.

Kept out of engine.py (which only dispatches here). The record holds the spec and the last
slot fired; the firing itself is the service's (service/schedules.py), leader-only.
"""

from __future__ import annotations

import msgspec

from codeq.core.schedules import Schedule, ScheduleSpec, validate_identity, validate_spec
from codeq.engine import commands as c
from codeq.engine import keys
from codeq.engine.context import ApplyContext, Reader
from codeq.engine.outcomes import ScheduleDeleted, SchedulePut
from codeq.kv.api import prefix_upper_bound


class _Record(msgspec.Struct, array_like=True, frozen=True):
    tenant: str
    name: str
    command: str
    payload: str
    priority: int
    max_attempts: int
    cron: str
    timezone: str
    every_seconds: int
    jitter_seconds: int
    catch_up: str
    version: int
    created_ms: int
    updated_ms: int
    last_slot_ms: int


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


def encode(schedule: Schedule) -> bytes:
    s = schedule.spec
    return _encode(
        _Record(
            schedule.tenant,
            schedule.name,
            s.command,
            s.payload,
            s.priority,
            s.max_attempts,
            s.cron,
            s.timezone,
            s.every_seconds,
            s.jitter_seconds,
            s.catch_up,
            schedule.version,
            schedule.created_ms,
            schedule.updated_ms,
            schedule.last_slot_ms,
        )
    )


def decode(raw: bytes) -> Schedule:
    r = _decode(raw)
    spec = ScheduleSpec(
        r.command,
        r.payload,
        r.priority,
        r.max_attempts,
        r.cron,
        r.timezone,
        r.every_seconds,
        r.jitter_seconds,
        r.catch_up,
    )
    return Schedule(r.tenant, r.name, spec, r.version, r.created_ms, r.updated_ms, r.last_slot_ms)


def find(store: Reader, tenant: str, name: str) -> Schedule | None:
    raw = store.get(keys.schedule(tenant, name))
    return decode(raw) if raw is not None else None


def listed(store: Reader, tenant: str) -> list[Schedule]:
    """The schedules of `tenant` by name, or of every tenant for "" (the firing runner)."""
    lower = keys.schedule_prefix(tenant) if tenant else keys.SCHEDULE
    return [decode(raw) for _, raw in store.scan(lower, prefix_upper_bound(lower))]


ScheduleCommand = c.PutSchedule | c.DeleteSchedule | c.ScheduleFired


def apply(ctx: ApplyContext, cmd: ScheduleCommand) -> SchedulePut | ScheduleDeleted:
    if isinstance(cmd, c.PutSchedule):
        return _put(ctx, cmd)
    validate_identity(cmd.tenant, cmd.name)
    key = keys.schedule(cmd.tenant, cmd.name)
    raw = ctx.read(key)
    if raw is None:
        return ScheduleDeleted(existed=False)
    if isinstance(cmd, c.DeleteSchedule):
        ctx.stage(key, None)
        return ScheduleDeleted(existed=True)
    current = decode(raw)
    if cmd.slot_ms > current.last_slot_ms:  # a late record of an older slot never moves it back
        ctx.stage(key, encode(_with_last_slot(current, cmd.slot_ms)))
    return ScheduleDeleted(existed=True)


def _with_last_slot(schedule: Schedule, slot_ms: int) -> Schedule:
    s = schedule
    return Schedule(s.tenant, s.name, s.spec, s.version, s.created_ms, s.updated_ms, slot_ms)


def _put(ctx: ApplyContext, cmd: c.PutSchedule) -> SchedulePut:
    validate_identity(cmd.tenant, cmd.name)
    spec = validate_spec(
        ScheduleSpec(
            cmd.command,
            cmd.payload,
            cmd.priority,
            cmd.max_attempts,
            cmd.cron,
            cmd.timezone,
            cmd.every_seconds,
            cmd.jitter_seconds,
            cmd.catch_up,
        )
    )
    key = keys.schedule(cmd.tenant, cmd.name)
    raw = ctx.read(key)
    current = decode(raw) if raw is not None else None
    if current is None:
        schedule = Schedule(cmd.tenant, cmd.name, spec, 1, cmd.now_ms, cmd.now_ms)
    elif current.spec == spec:
        return SchedulePut(current, created=False)  # identical: same version, same updatedAt
    else:
        # A changed spec keeps the slots already fired: it never fires one of them again.
        version = current.version + 1
        schedule = Schedule(
            cmd.tenant, cmd.name, spec, version, current.created_ms, cmd.now_ms, current.last_slot_ms
        )
    ctx.stage(key, encode(schedule))
    return SchedulePut(schedule, created=current is None)
