"""What applying a command returns to whoever proposed it, and the events it raised."""

from __future__ import annotations

from dataclasses import dataclass, field

from codeq.core.errors import CodeqError
from codeq.core.model import ResultRecord, Task
from codeq.core.schedules import Schedule
from codeq.core.topics import Topic


@dataclass(slots=True)
class Created:
    task: Task
    replay: bool = False


@dataclass(slots=True)
class Claimed:
    tasks: list[Task]


@dataclass(slots=True)
class LeaseExtended:
    task: Task


@dataclass(slots=True)
class Requeued:
    task: Task


@dataclass(slots=True)
class Nacked:
    delay_seconds: int
    dead_lettered: bool
    cancelled: bool = False  # the task was cancelled while leased: it finished as CANCELLED


@dataclass(slots=True)
class Completed:
    task: Task
    record: ResultRecord


@dataclass(slots=True)
class Cancelled:
    """The task after a cancel: CANCELLED, or still IN_PROGRESS with `cancel_requested`."""

    task: Task


@dataclass(slots=True)
class Swept:
    promoted: int = 0
    expired: int = 0
    dead_lettered: int = 0
    deleted: int = 0
    idempotency_keys_expired: int = 0


@dataclass(slots=True)
class BatchApplied:
    items: list[Created | Completed | CodeqError] = field(default_factory=list)


@dataclass(slots=True)
class DlqChanged:
    """How many dead-lettered tasks a requeue or purge moved or deleted."""

    count: int


@dataclass(slots=True)
class OutboxChanged:
    found: bool


@dataclass(slots=True)
class SubscriptionChanged:
    subscription_id: str
    expires_ms: int
    removed: int = 0


@dataclass(slots=True)
class TopicPut:
    topic: Topic
    created: bool  # False: it existed (changed with a version bump, or identical and untouched)


@dataclass(slots=True)
class TopicDeleted:
    existed: bool


@dataclass(slots=True)
class SchedulePut:
    schedule: Schedule
    created: bool


@dataclass(slots=True)
class ScheduleDeleted:
    existed: bool


Outcome = (
    Created
    | Claimed
    | LeaseExtended
    | Requeued
    | Nacked
    | Completed
    | Swept
    | BatchApplied
    | DlqChanged
    | OutboxChanged
    | SubscriptionChanged
    | TopicPut
    | TopicDeleted
    | Cancelled
    | SchedulePut
    | ScheduleDeleted
)


@dataclass(frozen=True, slots=True)
class Ready:
    """Tasks became claimable in (tenant, command key): wake that many waiting claims."""

    tenant: str
    command_key: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Finished:
    """A task reached a terminal state: completed, failed by its worker, or dead-lettered."""

    task: Task
    via_lease_expiry: bool = False


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """`kind` is created, claimed or lease_expired; for metrics."""

    kind: str
    task: Task


Event = Ready | Finished | TaskEvent
