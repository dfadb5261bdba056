"""Stream messages to service requests and domain records to stream messages."""

from __future__ import annotations

import time
from typing import TypeVar

import msgspec
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from codeq.core.errors import InvalidInput
from codeq.core.model import Status, Task
from codeq.service.results import NewResult
from codeq.service.tasks import NewTask
from codeq.transport.json_input import check_json
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb

M = TypeVar("M", bound=Message)
_decode_json = msgspec.json.Decoder().decode


def parse(cls: type[M], raw: bytes) -> M | None:
    """A client event, or None when the bytes are not a valid message of that type."""
    try:
        return cls.FromString(raw)
    except DecodeError:
        return None


def json_text(raw: bytes, field: str) -> str:
    """The bytes as JSON text; the stream path validates like REST does (spec 07 gap 8)."""
    check_json(raw, f"invalid '{field}'", field)
    try:
        text = raw.decode()
        _decode_json(raw)
    except (UnicodeDecodeError, msgspec.DecodeError):
        raise InvalidInput(f"invalid '{field}' (must be JSON)", field=field) from None
    return text


def new_task(create: ppb.CreateTask) -> NewTask:
    run_at_ms = None
    # The reference's SDK leaves a zero Timestamp for "not set"; so does this server.
    if create.HasField("run_at") and (create.run_at.seconds or create.run_at.nanos):
        run_at_ms = create.run_at.seconds * 1000 + create.run_at.nanos // 1_000_000
    return NewTask(
        command=create.command,
        # An empty payload is JSON null (spec 07 §3.1).
        payload=json_text(create.payload, "payload") if create.payload else "null",
        priority=create.priority,
        webhook=create.webhook,
        max_attempts=create.max_attempts if create.max_attempts > 0 else None,
        idempotency_key=create.idempotency_key,
        run_at_ms=run_at_ms,
        delay_seconds=create.delay_seconds,
        trace_parent=create.trace_parent,
        trace_state=create.trace_state,
    )


def new_result(result: wpb.Result) -> NewResult:
    body = None
    raw = result.result_json.strip()
    if raw and raw != b"null":  # null is "no result", as on REST
        body = json_text(raw, "result_json")
        if not body.startswith("{"):
            raise InvalidInput("invalid 'result_json' (must be a JSON object)", field="result_json")
    return NewResult(
        task_id=result.task_id,
        status=result.status,
        result=body,
        error=result.error,
        lease_token=result.lease_token,
    )


def task_message(task: Task) -> wpb.Task:
    message = wpb.Task(
        id=task.id,
        command=task.command,
        payload=task.payload.encode(),
        priority=task.priority,
        webhook=task.webhook,
        max_attempts=task.max_attempts,
        status=task.status.value,
        worker_id=task.worker_id,
        lease_until=_rfc3339_utc_seconds(task.lease_until_ms) if task.lease_until_ms else "",
        attempts=task.attempts,
        tenant_id=task.tenant,
        lease_token=task.lease_epoch if task.status is Status.IN_PROGRESS else 0,
        # Stored only while tracing is on; empty strings are not sent at all.
        trace_parent=task.trace_parent,
        trace_state=task.trace_state,
    )
    if task.created_ms:
        message.created_at.CopyFrom(_timestamp(task.created_ms))
    if task.updated_ms:
        message.updated_at.CopyFrom(_timestamp(task.updated_ms))
    return message


def _timestamp(ms: int) -> Timestamp:
    seconds, millis = divmod(ms, 1000)
    return Timestamp(seconds=seconds, nanos=millis * 1_000_000)


def _rfc3339_utc_seconds(ms: int) -> str:
    """The reference's `lease_until` format: whole seconds, UTC, `Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
