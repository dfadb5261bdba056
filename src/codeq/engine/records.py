"""Stored values: tasks and results as compact MessagePack tuples (fields by position)."""

from __future__ import annotations

from typing import Any

import msgspec

from codeq.core.model import Artifact, Location, ResultRecord, Status, Task

_encode = msgspec.msgpack.Encoder().encode
_decode_tuple = msgspec.msgpack.Decoder(tuple).decode

# Field order is the on-disk format: append new fields at the end, never reorder.
_TASK_FIELDS = (
    "id",
    "tenant",
    "command",
    "payload",
    "priority",
    "webhook",
    "status",
    "location",
    "attempts",
    "max_attempts",
    "created_ms",
    "updated_ms",
    "visible_ms",
    "seq",
    "worker_id",
    "lease_until_ms",
    "error",
    "has_result",
    "idempotency_key",
    "finished_ms",
    "lease_epoch",  # absent from records written before leases were fenced: decodes as 0
    "cancel_requested",  # absent from records written before cancel: decodes as False
    "trace_parent",  # absent from records written before tracing: decodes as ""
    "trace_state",
)


def encode_task(task: Task) -> bytes:
    return _encode(
        (
            task.id,
            task.tenant,
            task.command,
            task.payload,
            task.priority,
            task.webhook,
            task.status.value,
            task.location.value,
            task.attempts,
            task.max_attempts,
            task.created_ms,
            task.updated_ms,
            task.visible_ms,
            task.seq,
            task.worker_id,
            task.lease_until_ms,
            task.error,
            task.has_result,
            task.idempotency_key,
            task.finished_ms,
            task.lease_epoch,
            task.cancel_requested,
            task.trace_parent,
            task.trace_state,
        )
    )


_STATUS = {s.value: s for s in Status}
_LOCATION = {loc.value: loc for loc in Location}


def decode_task(raw: bytes) -> Task:
    values: tuple[Any, ...] = _decode_tuple(raw)
    task = Task(*values[: len(_TASK_FIELDS)])
    task.status = _STATUS[task.status]  # dict lookups: the enum constructors cost 10x more
    task.location = _LOCATION[task.location]
    # No interning: a decoded task lives only as long as one command or read (the index keeps
    # its own small entry, engine/index.py).
    return task


class Placement(msgspec.Struct, array_like=True, gc=False):
    """The leading fields of a stored task, enough to place it in the index at a restart; the
    payload is skipped undecoded (`Raw`), the fields after `lease_until_ms` ignored. Decoded a
    million times at a restart: the status as its enum member (no new string), small ints as
    ints (cached objects, cheaper than a `Raw` view), and no tracking by the collector."""

    id: str
    tenant: str
    command: str
    payload: msgspec.Raw
    priority: int
    webhook: object
    status: Status
    location: object
    attempts: int
    max_attempts: int
    created_ms: int
    updated_ms: int
    visible_ms: int
    seq: int
    worker_id: object
    lease_until_ms: int


decode_placement = msgspec.msgpack.Decoder(Placement).decode


def encode_result(record: ResultRecord) -> bytes:
    artifacts = [(a.name, a.url) for a in record.artifacts]
    return _encode(
        (record.task_id, record.status.value, record.result, record.error, artifacts, record.completed_ms)
    )


def decode_result(raw: bytes) -> ResultRecord:
    task_id, status, result, error, artifacts, completed_ms = _decode_tuple(raw)[:6]
    return ResultRecord(
        task_id=task_id,
        status=Status(status),
        result=result,
        error=error,
        artifacts=[Artifact(name, url) for name, url in artifacts],
        completed_ms=completed_ms,
    )


def encode_idempotency(task_id: str, expires_ms: int) -> bytes:
    return _encode((task_id, expires_ms))


def decode_idempotency(raw: bytes) -> tuple[str, int]:
    task_id, expires_ms = _decode_tuple(raw)[:2]
    return str(task_id), int(expires_ms)
