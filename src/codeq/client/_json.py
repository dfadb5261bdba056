"""HTTP JSON bodies to and from the SDK's models (the wire structs are `codeq.wire.http`)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from codeq.client import _errors as e
from codeq.client._models import COMPLETED, Artifact, Result, ResultSpec, Task, TaskSpec
from codeq.wire import http as w


class ResultIn(msgspec.Struct, rename="camel", kw_only=True):
    """`wire.http.ResultJSON` for decoding: its `Raw | None` field is encode-only in msgspec."""

    task_id: str
    status: str
    result: msgspec.Raw = w.NULL
    error: str = ""
    artifacts: list[w.ArtifactJSON] = []
    completed_at: str


class TaskWithResultIn(msgspec.Struct, kw_only=True):
    result: ResultIn
    task: w.TaskJSON


class BatchItemIn(msgspec.Struct, kw_only=True):
    task: w.TaskJSON | None = None
    error: str = ""


class BatchCreateIn(msgspec.Struct, kw_only=True):
    results: list[BatchItemIn]


class BatchClaimIn(msgspec.Struct, kw_only=True):
    tasks: list[w.TaskJSON] = []


class BatchResultItemIn(msgspec.Struct, rename="camel", kw_only=True):
    task_id: str = ""
    result: ResultIn | None = None
    error: str = ""


class BatchResultsIn(msgspec.Struct, kw_only=True):
    results: list[BatchResultItemIn]


CLAIM_BATCH_LIMIT = 10  # tasks per `/tasks/claim/batch` (spec 02 §4.4)
RESULTS_BATCH_LIMIT = 100  # items per `/tasks/batch/results` (spec 02 §4.9)
_encode = msgspec.json.Encoder().encode
_batch_claim = msgspec.json.Decoder(BatchClaimIn).decode
_batch_results = msgspec.json.Decoder(BatchResultsIn).decode


def claimed_tasks(body: bytes) -> list[Task]:
    """The tasks of a `/tasks/claim/batch` answer (a trailing `error` means the claims stopped)."""
    return [task_from_wire(task) for task in _batch_claim(body).tasks]


def results_request(items: list[ResultSpec]) -> bytes:
    """A `/tasks/batch/results` body."""
    raws = [
        msgspec.Raw(
            _encode(
                w.BatchResultItem(
                    task_id=item.task_id,
                    status=item.status,
                    result=w.NULL if item.result is None else msgspec.Raw(_encode(item.result)),
                    error=item.error or None,
                    lease_token=item.lease_token or None,
                )
            )
        )
        for item in items
    ]
    return _encode(w.BatchResultsRequest(results=raws))


def results_outcomes(body: bytes) -> list[Result | e.CodeqError]:
    """One outcome per item of a `/tasks/batch/results` answer, in order."""
    return [
        result_from_wire(item.result) if item.result is not None else e.error_from_text(item.error)
        for item in _batch_results(body).results
    ]


def create_request(spec: TaskSpec) -> w.CreateTaskRequest:
    """The wire body for one create; rejects a naive `run_at` rather than guess its zone."""
    run_at = None
    if spec.run_at is not None:
        if spec.run_at.tzinfo is None or spec.run_at.utcoffset() is None:
            raise ValueError("run_at must be a timezone-aware datetime")
        run_at = spec.run_at.isoformat()
    return w.CreateTaskRequest(
        command=spec.command,
        payload=msgspec.Raw(_encode(spec.payload)),
        priority=spec.priority or None,
        webhook=spec.webhook,
        max_attempts=spec.max_attempts,
        idempotency_key=spec.idempotency_key,
        run_at=run_at,
        delay_seconds=spec.delay_seconds,
    )


def task_from_wire(task: w.TaskJSON, *, replayed: bool = False) -> Task:
    return Task(
        id=task.id,
        command=task.command,
        payload=msgspec.json.decode(task.payload) if task.payload else None,
        status=task.status,
        priority=task.priority,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        tenant_id=task.tenant_id,
        worker_id=task.worker_id,
        webhook=task.webhook,
        error=task.error,
        lease_until=datetime.fromisoformat(task.lease_until) if task.lease_until else None,
        lease_token=task.lease_token,
        has_result=bool(task.result_key),
        created_at=datetime.fromisoformat(task.created_at),
        updated_at=datetime.fromisoformat(task.updated_at),
        replayed=replayed,
        cancel_requested=task.cancel_requested,
        trace_parent=task.trace_parent,
        trace_state=task.trace_state,
    )


def result_from_wire(result: ResultIn, task: w.TaskJSON | None = None) -> Result:
    return Result(
        task_id=result.task_id,
        status=result.status,
        result=_result_value(result),
        error=result.error,
        artifacts=tuple(Artifact(a.name, a.url) for a in result.artifacts),
        completed_at=datetime.fromisoformat(result.completed_at),
        task=task_from_wire(task) if task is not None else None,
    )


def _result_value(result: ResultIn) -> object:
    if bytes(result.result) != b"null":
        return msgspec.json.decode(result.result)
    # The server omits an empty result object (spec 01 §1): a completion always carries one.
    return {} if result.status == COMPLETED else None
