"""Stream messages to and from the SDK's models, and stream error codes to the SDK's errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from google.protobuf.timestamp_pb2 import Timestamp

from codeq.client import _errors as e
from codeq.client._models import COMPLETED, Result, ResultSpec, Task, TaskSpec, result_object
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb

PreparedCreate = tuple[TaskSpec, int, bytes]  # (spec, seq, payload JSON)
PreparedResult = tuple[ResultSpec, bytes]  # (outcome, result JSON)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_EPOCH = datetime.fromtimestamp(0, UTC)
# The tasks of one delivery mostly share their timestamps (created together, claimed together):
# a small memo of converted ones spares a datetime per field per task (datetimes are immutable).
_MEMO_LIMIT = 1024
_stamps: dict[tuple[int, int], datetime] = {}
_lease_ends: dict[str, datetime] = {}

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


def prepare_create(spec: TaskSpec, seq: int) -> PreparedCreate:
    """A create checked and with its payload encoded: one that cannot be sent fails here, alone,
    before it joins a batch."""
    if spec.run_at is not None and (spec.run_at.tzinfo is None or spec.run_at.utcoffset() is None):
        raise ValueError("run_at must be a timezone-aware datetime")
    return spec, seq, _encode(spec.payload)


def create_batch_event(creates: Sequence[PreparedCreate]) -> ppb.ProducerEvent:
    """One CreateTaskBatch, each CreateTask built in place (copying in built ones costs as much again)."""
    event = ppb.ProducerEvent()
    add = event.create_batch.tasks.add
    for spec, seq, payload in creates:
        _fill_create(add(), spec, seq, payload)
    return event


def create_size(create: PreparedCreate) -> int:
    """The encoded size of one CreateTask (to split a batch too large for one message)."""
    message = ppb.CreateTask()
    _fill_create(message, *create)
    return message.ByteSize()


def _fill_create(create: ppb.CreateTask, spec: TaskSpec, seq: int, payload: bytes) -> None:
    # Zero values stay unset: proto3 does not encode them, so the bytes are the same, for less work.
    create.seq = seq
    create.command = spec.command
    create.payload = payload
    if spec.priority:
        create.priority = spec.priority
    if spec.webhook:
        create.webhook = spec.webhook
    if spec.max_attempts:
        create.max_attempts = spec.max_attempts
    if spec.idempotency_key:
        create.idempotency_key = spec.idempotency_key
    if spec.delay_seconds:
        create.delay_seconds = spec.delay_seconds
    if spec.run_at is not None:
        create.run_at.FromDatetime(spec.run_at)


def created_task(spec: TaskSpec, task_id: str, tenant_id: str, now: datetime | None = None) -> Task:
    """The new task as the ack describes it: a CreateAck carries only the id, so the rest is the
    request's, with this client's clock for the timestamps (`now`, taken once per batch)."""
    if now is None:
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
    payload, lease_until = task.payload, task.lease_until  # each field read costs a lookup
    return Task(
        id=task.id,
        command=task.command,
        payload=_decode(payload) if payload else None,
        status=task.status,
        priority=task.priority,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        tenant_id=task.tenant_id,
        worker_id=task.worker_id,
        webhook=task.webhook,
        lease_until=_lease_end(lease_until) if lease_until else None,
        lease_token=task.lease_token,
        created_at=_datetime(task.created_at),
        updated_at=_datetime(task.updated_at),
        trace_parent=task.trace_parent,  # the handler continues this trace (_tracing.py)
        trace_state=task.trace_state,
    )


def prepare_result(item: ResultSpec) -> PreparedResult:
    """A result with its JSON encoded: one that cannot be sent fails here, before it joins a batch."""
    return item, b"" if item.result is None else _encode(item.result)


def result_batch_event(results: Sequence[PreparedResult]) -> wpb.WorkerEvent:
    """One ResultBatch, each Result built in place."""
    event = wpb.WorkerEvent()
    add = event.result_batch.results.add
    for item, body in results:
        _fill_result(add(), item, body)
    return event


def result_size(result: PreparedResult) -> int:
    """The encoded size of one Result (to split a batch too large for one message)."""
    message = wpb.Result()
    _fill_result(message, *result)
    return message.ByteSize()


def _fill_result(message: wpb.Result, item: ResultSpec, body: bytes) -> None:
    message.task_id = item.task_id
    message.status = item.status
    if body:
        message.result_json = body
    if item.error:
        message.error = item.error
    if item.lease_token:
        message.lease_token = item.lease_token


def accepted_result(item: ResultSpec, now: datetime | None = None) -> Result:
    """The stored result as the ack describes it: a ResultAck carries no record, so this is the
    submission itself, with this client's clock for `completed_at` (`now`, once per batch)."""
    value: Any = result_object(item.result) if item.status == COMPLETED else None
    return Result(
        task_id=item.task_id,
        status=item.status,
        result=value,
        error=item.error,
        completed_at=datetime.now(UTC) if now is None else now,
    )


def _datetime(stamp: Timestamp) -> datetime:
    """A Timestamp as an aware UTC datetime; an unset one reads as zero, the epoch."""
    key = (stamp.seconds, stamp.nanos)
    found = _stamps.get(key)
    if found is None:
        if len(_stamps) >= _MEMO_LIMIT:
            _stamps.clear()
        found = _stamps[key] = _EPOCH + timedelta(0, key[0], key[1] // 1000)
    return found


def _lease_end(text: str) -> datetime:
    found = _lease_ends.get(text)
    if found is None:
        if len(_lease_ends) >= _MEMO_LIMIT:
            _lease_ends.clear()
        found = _lease_ends[text] = datetime.fromisoformat(text)
    return found
