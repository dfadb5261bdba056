"""What the SDK hands to callers: tasks, results and task specs, with payloads decoded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """A task as the server last reported it.

    `payload` is the JSON payload decoded to Python values. `status` is one of `PENDING`,
    `IN_PROGRESS`, `COMPLETED`, `FAILED`, `CANCELLED`. `attempts` counts deliveries so far.
    `replayed` is True when `create` found an earlier task with the same idempotency key and
    returned it. `cancel_requested` is True when an admin cancelled it while a worker held it.
    `lease_token` names the claim that holds the task while it is `IN_PROGRESS` (0 otherwise,
    or from a server without fenced leases): the worker presents it with every heartbeat,
    nack, abandon and result, so that once that lease is gone they are refused, not applied.
    """

    id: str
    command: str
    payload: Any
    status: str
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 0
    tenant_id: str = ""
    worker_id: str = ""
    webhook: str = ""
    error: str = ""
    lease_until: datetime | None = None
    lease_token: int = 0
    has_result: bool = False
    created_at: datetime
    updated_at: datetime
    replayed: bool = False
    cancel_requested: bool = False
    # W3C trace context stored at create when the server traces; a worker continues it.
    trace_parent: str = ""
    trace_state: str = ""


class Artifact(msgspec.Struct, frozen=True):
    """A named URL attached to a result."""

    name: str
    url: str


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """A task's outcome: `status` is `COMPLETED` or `FAILED`.

    `result` is the decoded result object (`{}` at least when `COMPLETED`, None when `FAILED`),
    `error` the failure text. `task` is the task as it stood when the result was read; it is
    None on results returned to a worker for its own submission.
    """

    task_id: str
    status: str
    result: Any = None
    error: str = ""
    artifacts: tuple[Artifact, ...] = ()
    completed_at: datetime
    task: Task | None = None


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One task to create, as `create_many` takes it (a mapping with these keys works too).

    `payload` is any JSON-encodable value; `run_at` must be timezone-aware and wins over
    `delay_seconds`; `max_attempts` None means the server's default.
    """

    command: str
    payload: Any
    priority: int = 0
    delay_seconds: int | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    webhook: str | None = None


class ResultSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One outcome to submit, as `Transport.submit_results` takes it: `status` `COMPLETED` with
    a `result` object, or `FAILED` with an `error` text. `lease_token` is the claim's
    (`Task.lease_token`); 0 sends none, and the server then checks only the worker."""

    task_id: str
    status: str
    result: Any = None
    error: str = ""
    lease_token: int = 0


def result_object(value: Any) -> Any:
    """A handler's return value as a result object: None → {}, a mapping as is, else {"value": v}."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {"value": value}
