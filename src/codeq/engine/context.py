"""What one apply may touch: the engine's settings, and the narrow context its feature modules get.

The feature modules (dlq, outbox, retention, subscriptions, topics) see the state machine only
through `ApplyContext`: read (through the writes staged by this apply), scan the store, stage
a write, place tasks in the index, emit an event. They never import `engine.engine`, so a
feature cannot reach into the dispatcher, and the dispatcher imports them without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from codeq.core.backoff import BackoffPolicy
from codeq.core.model import Location, Status, Task
from codeq.core.names import command_key
from codeq.engine import keys, records
from codeq.engine.index import Index, Live
from codeq.engine.outcomes import Event, Ready


class Reader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]: ...

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]: ...

    def scan_reverse(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    retention_ms: int = 86_400_000
    idempotency_ttl_ms: int = 86_400_000
    # Per terminal state; 0 means `retention_ms`.
    retention_completed_ms: int = 0
    retention_failed_ms: int = 0
    retention_dead_lettered_ms: int = 0

    def retention_for(self, task: Task) -> int:
        """How long a finished task (and its result) is kept after it finished."""
        if task.location is Location.DLQ_SET:
            chosen = self.retention_dead_lettered_ms
        elif task.status is Status.FAILED:
            chosen = self.retention_failed_ms
        else:
            chosen = self.retention_completed_ms
        return chosen or self.retention_ms


class ApplyContext:
    """The state of the apply in progress: its staged writes (`ops`) and raised events."""

    __slots__ = ("config", "events", "index", "ops", "store")

    def __init__(self, store: Reader, index: Index, config: EngineConfig) -> None:
        self.store = store
        self.index = index
        self.config = config
        self.ops: dict[bytes, bytes | None] = {}
        self.events: list[Event] = []

    def read(self, key: bytes) -> bytes | None:
        """A key as this apply sees it: its own staged write first, then the store."""
        ops = self.ops
        if key in ops:
            return ops[key]
        return self.store.get(key)

    def live_task(self, task_id: str) -> Task | None:
        """A live task in full (None when it is not live): its record from the store."""
        live = self.index.tasks.get(task_id)
        return None if live is None else self.load(live)

    def load(self, live: Live) -> Task:
        """The record of an indexed task, read through this apply's writes and the committer's
        overlay (so a task created a moment ago and not yet durable is found too)."""
        return _loaded(live, self.read(keys.live(live.id)))

    def load_many(self, lives: list[Live]) -> list[Task]:
        """`load` of several tasks (a batch claim): one multi-get for those not staged here."""
        ops = self.ops
        wanted = [keys.live(live.id) for live in lives]
        unstaged = [key for key in wanted if key not in ops]
        stored = dict(zip(unstaged, self.store.get_many(unstaged), strict=True)) if unstaged else {}
        return [
            _loaded(live, ops[key] if key in ops else stored[key])
            for live, key in zip(lives, wanted, strict=True)
        ]

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """The store's keys in [lower, upper), without this apply's own staged writes."""
        return self.store.scan(lower, upper, limit)

    def stage(self, key: bytes, value: bytes | None) -> None:
        """Add a write (None: a delete) to this apply's batch."""
        self.ops[key] = value

    def emit(self, event: Event) -> None:
        """Raise an event; it reaches listeners only once this apply's writes are durable."""
        self.events.append(event)

    def to_pending(self, task: Task, now_ms: int, visible_ms: int) -> None:
        """Back to PENDING at the tail of its priority, claimable from `visible_ms`, and staged.
        A live task must be unplaced first; a finished one (a DLQ requeue) is not indexed."""
        index = self.index
        task.status = Status.PENDING
        task.worker_id = ""
        task.lease_until_ms = 0
        task.error = ""
        task.visible_ms = visible_ms
        task.seq = index.take_seq()
        task.updated_ms = now_ms
        if index.place(task, now_ms):
            self.events.append(Ready(task.tenant, command_key(task.command)))
        self.ops[keys.live(task.id)] = records.encode_task(task)


def _loaded(live: Live, raw: bytes | None) -> Task:
    if raw is None:  # the index and the store disagree: this replica cannot go on
        raise AssertionError(f"live task {live.id} has no record")
    task = records.decode_task(raw)
    # Promotion from delayed to ready changes only the index: the stored location may lag.
    task.location = live.location
    return task
