"""The domain records: task, result, queue stats, and the task's states."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Location(StrEnum):
    """Where the task sits; a hint on the wire (`lastKnownLocation`)."""

    PENDING_LIST = "PENDING_LIST"
    DELAYED_ZSET = "DELAYED_ZSET"
    INPROG_SET = "INPROG_SET"
    DLQ_SET = "DLQ_SET"
    NONE = "NONE"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


@dataclass(slots=True)
class Task:
    """One unit of work. Times are milliseconds since the epoch; 0 means unset.

    `attempts` counts deliveries: it grows by one on every claim and on nothing else
    (spec 01 gap 1), so `max_attempts=N` means at most N deliveries. `lease_epoch` fences
    leases: it grows by one on every claim and never goes back (abandon gives the attempt back,
    not the epoch), so each claim's lease has its own number, handed out as its lease token.
    """

    id: str
    tenant: str
    command: str
    payload: str
    priority: int = 0
    webhook: str = ""
    status: Status = Status.PENDING
    location: Location = Location.PENDING_LIST
    attempts: int = 0
    max_attempts: int = 5
    created_ms: int = 0
    updated_ms: int = 0
    visible_ms: int = 0
    seq: int = 0
    worker_id: str = ""
    lease_until_ms: int = 0
    error: str = ""
    has_result: bool = False
    idempotency_key: str = ""
    finished_ms: int = 0
    lease_epoch: int = 0
    # An admin asked to cancel it while a worker held it: the worker's next call finishes it.
    cancel_requested: bool = False
    trace_parent: str = ""  # W3C trace context of the create, continued by claim and result
    trace_state: str = ""

    @property
    def ready_ms(self) -> int:
        """When the task became (or becomes) claimable: orders its priority's queue."""
        return self.visible_ms if self.visible_ms > self.created_ms else self.created_ms

    @property
    def is_live(self) -> bool:
        return self.status not in TERMINAL


@dataclass(slots=True)
class Artifact:
    name: str
    url: str


@dataclass(slots=True)
class ResultRecord:
    """What a worker reported, stored atomically with the task's terminal transition.

    `result` is the raw JSON text of the result object ("" when absent or empty).
    """

    task_id: str
    status: Status
    result: str = ""
    error: str = ""
    artifacts: list[Artifact] = field(default_factory=list)
    completed_ms: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    command: str
    ready: int
    delayed: int
    in_progress: int
    dlq: int
