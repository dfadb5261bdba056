"""Cancelling a task (issue 14): a waiting task finishes at once, a leased one on its worker's next call.

A PENDING task (ready or delayed) leaves its queue and finishes as CANCELLED with a result
record. An IN_PROGRESS task is only marked (`cancel_requested`): its worker still holds the
lease, so its next heartbeat, nack, abandon or result finishes it as CANCELLED instead (and is
answered "task cancelled"), and so does the lease-expiry sweep; it never runs again. Cancelling
twice is a no-op; cancelling a COMPLETED or FAILED task is refused. Applied like every command,
so a cancel racing a claim or a result is decided by log order on every replica.
"""

from __future__ import annotations

from collections.abc import Callable

from codeq.core.errors import NotFound, WrongState
from codeq.core.model import ResultRecord, Status, Task
from codeq.engine import commands as c
from codeq.engine import keys, records
from codeq.engine.context import ApplyContext
from codeq.engine.outcomes import Cancelled, Completed

CANCELLED_ERROR = "cancelled"
ALREADY_FINISHED = "task already finished"

# Finishes a live task as CANCELLED (the engine's terminal transition) and returns it.
FinishCancelled = Callable[[Task, int], Completed]


def cancelled_record(task_id: str, now_ms: int) -> ResultRecord:
    return ResultRecord(task_id=task_id, status=Status.CANCELLED, error=CANCELLED_ERROR, completed_ms=now_ms)


def cancel(ctx: ApplyContext, cmd: c.Cancel, finish: FinishCancelled) -> Cancelled:
    task = _find(ctx, cmd.task_id, cmd.tenant)
    if task.status is Status.CANCELLED or task.cancel_requested:
        return Cancelled(task)  # idempotent: a retried cancel changes nothing
    if not task.is_live:
        raise WrongState(ALREADY_FINISHED)
    if task.status is Status.IN_PROGRESS:
        ctx.index.unplace(task.id)  # re-placed: its in-progress listing follows `updated_ms`
        task.cancel_requested = True
        task.updated_ms = cmd.now_ms
        ctx.index.place(task, cmd.now_ms)
        ctx.stage(keys.live(task.id), records.encode_task(task))
        return Cancelled(task)
    return Cancelled(finish(task, cmd.now_ms).task)


def _find(ctx: ApplyContext, task_id: str, tenant: str) -> Task:
    """A task of `tenant`, live or finished; another tenant's is `not found` (spec 02 gap 2)."""
    task = ctx.live_task(task_id)
    if task is None:
        raw = ctx.read(keys.finished(task_id))
        task = records.decode_task(raw) if raw is not None else None
    if task is None or task.tenant != tenant:
        raise NotFound("not-found")
    return task
