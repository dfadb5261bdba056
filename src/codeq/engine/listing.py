"""Listing a command's tasks by state, and its finish counts over the last hour, without scans.

Live states (ready, delayed, in progress) are kept in memory, in the index's queues
(engine/index.py): per state a list of the tasks' positions, (order ms, seq, task id) first,
kept sorted. The order time is a field of the task, so a restart rebuilds the same lists:
ready tasks order by when they became claimable, delayed ones by when they were put off,
in-progress ones by their claim or last heartbeat; the task's sequence number breaks ties, so
entries mostly arrive in order and are appended. Entries are dropped lazily: one is current
only while it is still its task's position, and a list is compacted when its stale entries are
twice its live ones. Finished states are
store keys (`keys.finished_by_state`) written in the same batch as the terminal transition, so
a page is one bounded range read; tasks finished by a version without these keys are not
listed (they still show by id and leave with retention).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from codeq.core.model import Location, Status, Task
from codeq.engine import keys

READY = "ready"
DELAYED = "delayed"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
DEAD_LETTERED = "dead_lettered"
CANCELLED = "cancelled"
LIVE_STATES = (READY, DELAYED, IN_PROGRESS)
FINISHED_STATES = (COMPLETED, FAILED, DEAD_LETTERED, CANCELLED)
STATES = LIVE_STATES + FINISHED_STATES

Entry = tuple[int, int, str]  # (order ms, seq (0 when finished), task id): a listing position


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of a queue's tasks in one state: past `after` (exclusive), newest first or not."""

    tenant: str
    cmd_key: str
    state: str
    after: Entry | None
    newest: bool
    limit: int


# Enum members read once: a class attribute lookup on an Enum costs a descriptor call, and
# these run on every finish.
_STATUS_CANCELLED = Status.CANCELLED
_STATUS_COMPLETED = Status.COMPLETED
_IN_DLQ = Location.DLQ_SET


def finished_state(task: Task) -> str:
    """The listing state of a finished task."""
    status = task.status
    if status is _STATUS_COMPLETED:
        return COMPLETED
    if status is _STATUS_CANCELLED:
        return CANCELLED
    return DEAD_LETTERED if task.location is _IN_DLQ else FAILED


class RangeReader(Protocol):
    """The part of the engine's `Reader` a page needs (not imported: the context imports us)."""

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]: ...

    def scan_reverse(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]: ...


def finished_page(store: RangeReader, query: PageQuery) -> list[Entry]:
    """Up to `limit` finished tasks of (tenant, command, state) past `after`, from the store."""
    q = query
    prefix_length = len(keys.finished_by_state_prefix(q.tenant, q.cmd_key, q.state))
    after = (q.after[0], q.after[2]) if q.after is not None else None
    lower, upper = keys.finished_by_state_range(q.tenant, q.cmd_key, q.state, after, q.newest)
    scan = store.scan_reverse if q.newest else store.scan
    found: list[Entry] = []
    for key, _ in scan(lower, upper, q.limit):
        finished_ms, task_id = keys.split_finished_by_state(key, prefix_length)
        found.append((finished_ms, 0, task_id))
    return found


def stage_finished(ops: dict[bytes, bytes | None], task: Task, cmd_key: str) -> None:
    """Index a task that just finished (or drop that entry with `task` as it was finished)."""
    state = finished_state(task)
    ops[keys.finished_by_state(task.tenant, cmd_key, state, task.finished_ms, task.id)] = b""


def unstage_finished(ops: dict[bytes, bytes | None], task: Task, cmd_key: str) -> None:
    """Drop the entry of a finished task that leaves (retention, DLQ requeue or purge)."""
    state = finished_state(task)
    ops[keys.finished_by_state(task.tenant, cmd_key, state, task.finished_ms, task.id)] = None


_BUCKET_MS = 10_000  # ten-second buckets: "the last minute" is six of them
_HOUR_BUCKETS = 360
_MINUTE_BUCKETS = 6


@dataclass(slots=True)
class Finishes:
    """Completed and failed counts of one queue per ten-second bucket, the last hour only."""

    buckets: dict[int, list[int]] = field(default_factory=dict)  # bucket -> [completed, failed]


class Throughput:
    """Finish counts per (tenant, command key), fed by the apply path, so every replica that
    applies the same commands counts the same (from its own start: they are not stored)."""

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], Finishes] = {}

    def record(self, tenant: str, cmd_key: str, status: Status, finished_ms: int) -> None:
        if status is _STATUS_CANCELLED:
            return
        queue = self._queues.get((tenant, cmd_key))
        if queue is None:
            queue = self._queues[(tenant, cmd_key)] = Finishes()
        bucket = finished_ms // _BUCKET_MS
        counts = queue.buckets.get(bucket)
        if counts is None:
            counts = queue.buckets[bucket] = [0, 0]
            if len(queue.buckets) > _HOUR_BUCKETS + _MINUTE_BUCKETS:
                oldest = bucket - _HOUR_BUCKETS
                queue.buckets = {b: c for b, c in queue.buckets.items() if b > oldest}
        counts[0 if status is _STATUS_COMPLETED else 1] += 1

    def commands(self, tenant: str) -> list[str]:
        return [cmd_key for owner, cmd_key in self._queues if owner == tenant]

    def window(self, tenant: str, cmd_key: str, now_ms: int) -> tuple[int, int, int, int]:
        """(completed, failed) in the last minute, then in the last hour."""
        queue = self._queues.get((tenant, cmd_key))
        totals = [0, 0, 0, 0]
        if queue is None:
            return (0, 0, 0, 0)
        now_bucket = now_ms // _BUCKET_MS
        for bucket, (completed, failed) in queue.buckets.items():
            age = now_bucket - bucket
            if 0 <= age < _HOUR_BUCKETS:
                totals[2] += completed
                totals[3] += failed
                if age < _MINUTE_BUCKETS:
                    totals[0] += completed
                    totals[1] += failed
        return (totals[0], totals[1], totals[2], totals[3])
