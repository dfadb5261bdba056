"""Durable schedules: what one is, its validation, and the slot arithmetic every leader shares.

A slot is the instant (epoch ms) a schedule is meant to fire; its task is created at the slot
plus a jitter derived from (schedule, slot) alone, so every leader computes the same firing
time and the same idempotency key for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from codeq.core.errors import Unprocessable
from codeq.core.names import TENANT_PATTERN, is_valid_tenant, validate_command
from codeq.core.ranges import MAX_PRIORITY, MIN_PRIORITY
from codeq.core.topics import is_dns_label

CATCH_UP_SKIP = "skip"  # after downtime fire only the current slot
CATCH_UP_ONCE = "once"  # after downtime fire the latest missed slot once, then the current one
CATCH_UP_POLICIES = (CATCH_UP_SKIP, CATCH_UP_ONCE)
MAX_EVERY_SECONDS = 366 * 86_400
MAX_JITTER_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What an admin puts: the task to create and when (exactly one of `cron`, `every_seconds`)."""

    command: str
    payload: str  # raw JSON text
    priority: int = 0
    max_attempts: int = 0  # 0: the server's default
    cron: str = ""
    timezone: str = "UTC"
    every_seconds: int = 0
    jitter_seconds: int = 0
    catch_up: str = CATCH_UP_SKIP


@dataclass(frozen=True, slots=True)
class Schedule:
    tenant: str
    name: str
    spec: ScheduleSpec
    version: int
    created_ms: int
    updated_ms: int
    last_slot_ms: int = 0  # the latest slot fired (0: none yet)


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"invalid {field}: {message}", field=field)


def validate_identity(tenant: str, name: str) -> None:
    if not is_valid_tenant(tenant):
        raise _invalid("tenantId", f"must match {TENANT_PATTERN}")
    if not is_dns_label(name):
        raise _invalid("scheduleName", "must be a DNS label with at most 63 characters")


def validate_spec(spec: ScheduleSpec) -> ScheduleSpec:
    """The spec with its command trimmed, or `Unprocessable` naming the first bad field."""
    command = validate_command(spec.command)
    if bool(spec.cron) == bool(spec.every_seconds):
        raise _invalid("cron", "give exactly one of cron and everySeconds")
    if spec.every_seconds and not 1 <= spec.every_seconds <= MAX_EVERY_SECONDS:
        raise _invalid("everySeconds", f"must be from 1 through {MAX_EVERY_SECONDS}")
    if spec.cron:
        _zone(spec.timezone)
        try:
            CronSim(spec.cron, datetime.now(UTC))
        except CronSimError as exc:
            raise _invalid("cron", str(exc)) from None
    if not 0 <= spec.jitter_seconds <= MAX_JITTER_SECONDS:
        raise _invalid("jitterSeconds", f"must be from 0 through {MAX_JITTER_SECONDS}")
    if spec.catch_up not in CATCH_UP_POLICIES:
        raise _invalid("catchUp", "must be skip or once")
    if not MIN_PRIORITY <= spec.priority <= MAX_PRIORITY:
        raise _invalid("priority", f"must be from {MIN_PRIORITY} through {MAX_PRIORITY}")
    if spec.max_attempts < 0:
        raise _invalid("maxAttempts", "must be >= 0")
    return ScheduleSpec(
        command,
        spec.payload,
        spec.priority,
        spec.max_attempts,
        spec.cron,
        spec.timezone or "UTC",
        spec.every_seconds,
        spec.jitter_seconds,
        spec.catch_up,
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid("timezone", "unknown time zone") from None


def _to_datetime(ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone)


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def slot_after(spec: ScheduleSpec, after_ms: int) -> int:
    """The first slot strictly after `after_ms`."""
    if spec.every_seconds:
        step = spec.every_seconds * 1000
        return (after_ms // step + 1) * step  # slots sit on multiples of the interval since epoch
    zone = _zone(spec.timezone)
    return _to_ms(next(CronSim(spec.cron, _to_datetime(after_ms, zone))))


def slot_at_or_before(spec: ScheduleSpec, at_ms: int) -> int:
    """The latest slot at or before `at_ms`."""
    if spec.every_seconds:
        step = spec.every_seconds * 1000
        return at_ms // step * step
    zone = _zone(spec.timezone)
    # cronsim steps back strictly before its start, at whole seconds: start just past `at_ms`.
    start = _to_datetime((at_ms // 1000 + 1) * 1000, zone)
    return _to_ms(next(CronSim(spec.cron, start, reverse=True)))


def jitter_ms(tenant: str, name: str, spec: ScheduleSpec, slot_ms: int) -> int:
    """A delay in [0, jitterSeconds) fixed by (schedule, slot): every leader draws the same."""
    if not spec.jitter_seconds:
        return 0
    digest = hashlib.blake2b(f"{tenant}\0{name}\0{slot_ms}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (spec.jitter_seconds * 1000)


def idempotency_key(name: str, slot_ms: int) -> str:
    """The create's idempotency key: a slot fired twice (a failover) creates one task."""
    return f"schedule:{name}:{slot_ms}"


def slots_to_fire(schedule: Schedule, now_ms: int) -> tuple[list[int], int]:
    """The slots due at `now_ms` that the catch-up policy fires, oldest first, and the time the
    next slot falls due (its jitter included), for the runner to wake at."""
    spec = schedule.spec

    def due_at(slot: int) -> int:
        return slot + jitter_ms(schedule.tenant, schedule.name, spec, slot)

    after = max(schedule.last_slot_ms, schedule.created_ms - 1)
    first = slot_after(spec, after)
    if due_at(first) > now_ms:
        return [], due_at(first)
    latest = first
    candidate = slot_at_or_before(spec, now_ms)
    while candidate > latest:  # the newest slot whose jittered time has come
        if due_at(candidate) <= now_ms:
            latest = candidate
            break
        candidate = slot_at_or_before(spec, candidate - 1)
    fire = [latest]
    if latest != first and spec.catch_up == CATCH_UP_ONCE:
        fire.insert(0, slot_at_or_before(spec, latest - 1))  # the latest slot missed
    return fire, due_at(slot_after(spec, latest))
