"""Every state change as a command: plain data, decided fully by the node that proposes it.

The proposer fixes the time (`now_ms`), new task ids, lease lengths and the jitter draw, so
applying the same command to the same state gives the same result on every replica (design D1).
Each command names the outcome its apply returns (`Command[OutcomeT]`), so whoever submits one
gets that type back, checked by mypy, with no cast at the call site.

Commands are stored in replicated logs: a new field goes at the end with a default, so that a
command written before it existed still decodes. `lease_token` on the commands that act on a
lease is such a field: 0 (absent) keeps the owner check alone; any other value must also be
the task's current lease epoch.
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

import msgspec

from codeq.engine import outcomes as o

OutcomeT = TypeVar("OutcomeT", covariant=True)


class Command(msgspec.Struct, Generic[OutcomeT], tag=True, frozen=True, array_like=True):
    now_ms: int

    def expects(self, outcome: object) -> OutcomeT:
        """`outcome` as this command's outcome type: the one place that narrows what an apply
        returned, which `Engine.apply` guarantees by dispatching on the command's type."""
        return cast(OutcomeT, outcome)


class Create(Command[o.Created], frozen=True, array_like=True):
    task_id: str
    tenant: str
    command: str
    payload: str
    priority: int = 0
    webhook: str = ""
    max_attempts: int = 5
    visible_ms: int = 0
    idempotency_key: str = ""
    trace_parent: str = ""
    trace_state: str = ""


class Claim(Command[o.Claimed], frozen=True, array_like=True):
    tenant: str
    worker_id: str
    commands: list[str] | None  # None: every command of the tenant
    lease_ms: int
    count: int = 1


class Heartbeat(Command[o.LeaseExtended], frozen=True, array_like=True):
    tenant: str
    worker_id: str
    task_id: str
    extend_ms: int
    lease_token: int = 0


class Abandon(Command[o.Requeued], frozen=True, array_like=True):
    tenant: str
    worker_id: str
    task_id: str
    lease_token: int = 0


class Nack(Command[o.Nacked], frozen=True, array_like=True):
    tenant: str
    worker_id: str
    task_id: str
    delay_ms: int | None  # None: the backoff policy decides
    reason: str = ""
    jitter: float = 0.0
    lease_token: int = 0


class Complete(Command[o.Completed], frozen=True, array_like=True):
    tenant: str
    worker_id: str
    task_id: str
    status: str
    result: str = ""
    error: str = ""
    artifacts: list[tuple[str, str]] = []
    lease_token: int = 0


class Cancel(Command[o.Cancelled], frozen=True, array_like=True):
    """Cancel a task of `tenant` (engine/cancel.py)."""

    tenant: str
    task_id: str


class Tick(Command[o.Swept], frozen=True, array_like=True):
    """Background work: promote due delayed tasks, expire leases, drop what retention allows."""

    jitter_seed: int = 0
    limit: int = 512


class Cleanup(Command[o.Swept], frozen=True, array_like=True):
    """Admin cleanup: remove up to `limit` finished tasks whose retention ended by `before_ms`.

    `tenant` limits it to that tenant's tasks (an admin administers only its own tenant);
    "" is every tenant, for commands written before the field existed.
    """

    before_ms: int
    limit: int = 1000
    tenant: str = ""


class PutTopic(Command[o.TopicPut], frozen=True, array_like=True):
    """Create or update the topic `<tenant>.<name>` (spec 01 §10.2): version bumps on change."""

    tenant: str
    name: str
    priority_tiers: list[int]
    max_attempts: int
    dead_letter_topic_ref: str
    retention_seconds: int = 0
    max_consumers: int = 0


class DeleteTopic(Command[o.TopicDeleted], frozen=True, array_like=True):
    tenant: str
    name: str


class PutSchedule(Command[o.SchedulePut], frozen=True, array_like=True):
    """Create or update the schedule `name` of `tenant` (core/schedules.py); version bumps on change."""

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


class DeleteSchedule(Command[o.ScheduleDeleted], frozen=True, array_like=True):
    tenant: str
    name: str


class ScheduleFired(Command[o.ScheduleDeleted], frozen=True, array_like=True):
    """Record that the schedule's slot `slot_ms` was fired, so the next leader resumes after it.
    The outcome says whether the schedule still exists."""

    tenant: str
    name: str
    slot_ms: int


class DlqRequeue(Command[o.DlqChanged], frozen=True, array_like=True):
    """Put dead-lettered tasks of (tenant, command) back to PENDING with attempts reset:
    the ids listed, or with `all` up to `limit` of them in id order."""

    tenant: str
    command: str
    task_ids: list[str] = []
    all: bool = False
    limit: int = 1000


class DlqPurge(Command[o.DlqChanged], frozen=True, array_like=True):
    """Delete dead-lettered tasks of (tenant, command) with their results: ids, or `all` up to `limit`."""

    tenant: str
    command: str
    task_ids: list[str] = []
    all: bool = False
    limit: int = 1000


class WebhookOutcome(Command[o.OutboxChanged], frozen=True, array_like=True):
    """What one delivery attempt of an outbox entry came to: delivered (drop the entry), failed
    with a next attempt at `next_ms`, or failed for good (`next_ms` 0: drop it)."""

    delivery_id: str
    delivered: bool
    next_ms: int = 0


class SubscriptionCreate(Command[o.SubscriptionChanged], frozen=True, array_like=True):
    subscription_id: str
    tenant: str
    subject: str
    callback_url: str
    event_types: list[str]
    delivery_mode: str
    group_id: str
    min_interval_seconds: int
    expires_ms: int


class SubscriptionHeartbeat(Command[o.SubscriptionChanged], frozen=True, array_like=True):
    subscription_id: str
    tenant: str
    subject: str
    expires_ms: int


class SubscriptionDelete(Command[o.SubscriptionChanged], frozen=True, array_like=True):
    subscription_id: str
    tenant: str
    subject: str


class SubscriptionExpire(Command[o.SubscriptionChanged], frozen=True, array_like=True):
    """Remove up to `limit` subscriptions that expired before `now_ms`."""

    limit: int = 1000


class Batch(Command[o.BatchApplied], frozen=True, array_like=True):
    """Several commands applied in order as one atomic write; each gets its own outcome."""

    items: list[Create | Complete]


AnyCommand = (
    Create
    | Claim
    | Heartbeat
    | Abandon
    | Nack
    | Complete
    | Tick
    | Cleanup
    | Batch
    | PutTopic
    | DeleteTopic
    | DlqRequeue
    | DlqPurge
    | WebhookOutcome
    | SubscriptionCreate
    | SubscriptionHeartbeat
    | SubscriptionDelete
    | SubscriptionExpire
    | Cancel
    | PutSchedule
    | DeleteSchedule
    | ScheduleFired
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyCommand)


def encode_command(command: AnyCommand) -> bytes:
    return _encoder.encode(command)


def decode_command(raw: bytes) -> AnyCommand:
    command: AnyCommand = _decoder.decode(raw)
    return command
