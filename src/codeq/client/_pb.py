"""Stream messages to and from the SDK's models, and stream error codes to the SDK's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from google.protobuf.timestamp_pb2 import Timestamp

from codeq.client import _errors as e
from codeq.client._models import COMPLETED, Result, ResultSpec, Task, TaskSpec, result_object
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_EPOCH = datetime.fromtimestamp(0, UTC)

# gRPC status code names, as a ServerError's `code` spells them (Go's `codes.Code.String()`).
_BY_CODE: dict[str, type[e.CodeqError]] = {
    "InvalidArgument": e.BadRequest,
    "OutOfRange": e.BadRequest,
    "FailedPrecondition": e.Conflict,
    "AlreadyExists": e.Conflict,
    "Unauthenticated": e.Unauthorized,
    "PermissionDenied": e.Forbidden,
    "NotFound": e.NotFound,
    "ResourceExhausted": e.PayloadTooLarge,
    "Unavailable": e.Unavailable,
}


def error_from_code(code: str, message: str) -> e.CodeqError:
    """The typed error for a ServerError (or an RPC status) with code name `code`."""
    narrower = e.error_from_text(message)
    cls = _BY_CODE.get(code, e.ServerError)
    if isinstance(narrower, cls) and type(narrower) is not cls:
        cls = type(narrower)  # e.g. PermissionDenied "not-owner" is NotOwner
    return cls(message or code)


def ack_error(message: str) -> e.CodeqError:
    """The error of an ack with `ok: false`, which carries only the server's text."""
    return e.error_from_text(message or "rejected")


def create_event(spec: TaskSpec, seq: int) -> ppb.CreateTask:
    create = ppb.CreateTask(
        seq=seq,
        command=spec.command,
        payload=_encode(spec.payload),
        priority=spec.priority,
        webhook=spec.webhook or "",
        max_attempts=spec.max_attempts or 0,
        idempotency_key=spec.idempotency_key or "",
        delay_seconds=spec.delay_seconds or 0,
    )
    if spec.run_at is not None:
        if spec.run_at.tzinfo is None or spec.run_at.utcoffset() is None:
            raise ValueError("run_at must be a timezone-aware datetime")
        stamp = Timestamp()
        stamp.FromDatetime(spec.run_at)
        create.run_at.CopyFrom(stamp)
    return create


def created_task(spec: TaskSpec, task_id: str, tenant_id: str) -> Task:
    """The new task as the ack describes it: a CreateAck carries only the id, so the rest is the
    request's, with this client's clock for the timestamps."""
    now = datetime.now(UTC)
    return Task(
        id=task_id,
        command=spec.command,
        payload=spec.payload,
        status="PENDING",
        priority=spec.priority,
        max_attempts=spec.max_attempts or 0,
        tenant_id=tenant_id,
        webhook=spec.webhook or "",
        created_at=now,
        updated_at=now,
    )


def task_from_pb(task: wpb.Task) -> Task:
    return Task(
        id=task.id,
        command=task.command,
        payload=_decode(task.payload) if task.payload else None,
        status=task.status,
        priority=task.priority,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        tenant_id=task.tenant_id,
        worker_id=task.worker_id,
        webhook=task.webhook,
        lease_until=datetime.fromisoformat(task.lease_until) if task.lease_until else None,
        lease_token=task.lease_token,
        created_at=_datetime(task, "created_at"),
        updated_at=_datetime(task, "updated_at"),
        trace_parent=task.trace_parent,  # the handler continues this trace (_tracing.py)
        trace_state=task.trace_state,
    )


def result_event(item: ResultSpec) -> wpb.Result:
    body = b"" if item.result is None else _encode(item.result)
    return wpb.Result(
        task_id=item.task_id,
        status=item.status,
        result_json=body,
        error=item.error,
        lease_token=item.lease_token,
    )


def accepted_result(item: ResultSpec) -> Result:
    """The stored result as the ack describes it: a ResultAck carries no record, so this is the
    submission itself, with this client's clock for `completed_at`."""
    value: Any = result_object(item.result) if item.status == COMPLETED else None
    return Result(
        task_id=item.task_id,
        status=item.status,
        result=value,
        error=item.error,
        completed_at=datetime.now(UTC),
    )


def _datetime(task: wpb.Task, name: str) -> datetime:
    if not task.HasField(name):
        return _EPOCH
    stamp: Timestamp = getattr(task, name)
    return stamp.ToDatetime(tzinfo=UTC)
