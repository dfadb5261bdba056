"""Retention (spec 01 §8, gap 4): finished tasks, their results and DLQ entries leave once their
state's period is over; idempotency keys once their TTL is. Live tasks are never in these
indexes, so nothing live is ever removed. Run by every reaper `Tick` and by the admin `Cleanup`.
"""

from __future__ import annotations

from codeq.core.model import Location
from codeq.core.names import command_key
from codeq.engine import dlq, keys, listing, records
from codeq.engine.context import ApplyContext


def expire_finished(ctx: ApplyContext, before_ms: int, limit: int, tenant: str = "") -> int:
    """Delete finished tasks whose retention ended (of `tenant` only, when given). A tenant's
    cleanup looks at most 16×limit entries per call."""
    scan_limit = limit * 16 if tenant else limit
    deleted = 0
    upper = keys.retention(before_ms + 1, "")
    for key, finished_at in list(ctx.scan(keys.RETENTION, upper, scan_limit)):
        _, task_id = keys.split_retention(key)
        raw = ctx.read(keys.finished(task_id))
        task = records.decode_task(raw) if raw is not None else None
        if tenant and (task is None or task.tenant != tenant):
            continue
        ctx.stage(key, None)
        deleted += 1
        # An entry left by an earlier finish of a task requeued from the DLQ since goes
        # alone: the current finish has its own entry (its value is the finish time).
        stale = task is not None and bool(finished_at) and keys.read_be8(finished_at) != task.finished_ms
        if task is not None and not stale:
            ctx.stage(keys.finished(task_id), None)
            ctx.stage(keys.result(task_id), None)
            listing.unstage_finished(ctx.ops, task, command_key(task.command))
            if task.location is Location.DLQ_SET:
                dlq.drop_entry(ctx, task.tenant, command_key(task.command), task.id)
        if deleted >= limit:
            break
    return deleted


def expire_idempotency(ctx: ApplyContext, now_ms: int, limit: int) -> int:
    upper = keys.IDEMPOTENCY_EXPIRY + keys.be8(now_ms + 1)
    due = list(ctx.scan(keys.IDEMPOTENCY_EXPIRY, upper, limit))
    for key, _ in due:
        expires_ms, tenant, idem = keys.split_idempotency_expiry(key)
        ctx.stage(key, None)
        mapping_key = keys.idempotency(tenant, idem)
        raw = ctx.read(mapping_key)
        # The key may have been re-pointed later with a later expiry: keep that one.
        if raw is not None and records.decode_idempotency(raw)[1] <= expires_ms:
            ctx.stage(mapping_key, None)
    return len(due)
