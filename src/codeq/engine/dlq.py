"""Dead-letter tools (spec 01 gap 5): page through, requeue and purge dead-lettered tasks.

The reference only counts its DLQ. Here each dead-lettered task keeps its finished record,
its FAILED result and one DLQ index entry; requeue moves it back to the live range with a
fresh attempt budget, purge deletes all three. Both are commands, so they replicate.
"""

from __future__ import annotations

from codeq.core.model import Location, Task
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine import keys, listing, records
from codeq.engine.context import ApplyContext, Reader
from codeq.engine.outcomes import DlqChanged


def page(store: Reader, tenant: str, command: str, after_id: str, limit: int) -> list[Task]:
    """Up to `limit` dead-lettered tasks of (tenant, command) with ids after `after_id`, in id order."""
    lower, upper = keys.dlq_page_bounds(tenant, command_key(command), after_id)
    tasks: list[Task] = []
    for key, _ in store.scan(lower, upper, limit):
        raw = store.get(keys.finished(keys.split_dlq(key)))
        if raw is not None:
            tasks.append(records.decode_task(raw))
    return tasks


def requeue(ctx: ApplyContext, cmd: c.DlqRequeue) -> DlqChanged:
    changed = 0
    for task in _targets(ctx, cmd.tenant, cmd.command, cmd.task_ids, cmd.all, cmd.limit):
        _leave_dlq(ctx, task)
        task.attempts = 0  # a fresh budget: the operator decided the cause is fixed
        task.has_result = False
        task.finished_ms = 0
        ctx.to_pending(task, cmd.now_ms, cmd.now_ms)  # not indexed while finished: no unplace
        changed += 1
    return DlqChanged(changed)


def purge(ctx: ApplyContext, cmd: c.DlqPurge) -> DlqChanged:
    changed = 0
    for task in _targets(ctx, cmd.tenant, cmd.command, cmd.task_ids, cmd.all, cmd.limit):
        _leave_dlq(ctx, task)
        changed += 1
    return DlqChanged(changed)


def _targets(
    ctx: ApplyContext, tenant: str, command: str, task_ids: list[str], every: bool, limit: int
) -> list[Task]:
    """The dead-lettered tasks a command names; ids that are not in this DLQ are skipped."""
    cmd_key = command_key(command)
    if every:
        lower, upper = keys.dlq_page_bounds(tenant, cmd_key, "")
        task_ids = [keys.split_dlq(key) for key, _ in ctx.scan(lower, upper, max(limit, 1))]
    found: list[Task] = []
    seen: set[str] = set()
    for task_id in task_ids:
        if task_id in seen or ctx.read(keys.dlq(tenant, cmd_key, task_id)) is None:
            continue
        seen.add(task_id)
        raw = ctx.read(keys.finished(task_id))
        if raw is None:  # an entry whose task is gone: drop it, or `all` would stall on it
            drop_entry(ctx, tenant, cmd_key, task_id)
            continue
        task = records.decode_task(raw)
        if task.location is Location.DLQ_SET and task.tenant == tenant:
            found.append(task)
    return found


def drop_entry(ctx: ApplyContext, tenant: str, cmd_key: str, task_id: str) -> None:
    """Remove one DLQ index entry and count it out."""
    counts = ctx.index.dlq_counts
    count = counts[(tenant, cmd_key)] = max(counts.get((tenant, cmd_key), 0) - 1, 0)
    ctx.stage(keys.dlq(tenant, cmd_key, task_id), None)
    ctx.stage(keys.dlq_count(tenant, cmd_key), keys.be8(count))


def _leave_dlq(ctx: ApplyContext, task: Task) -> None:
    """Drop the finished record, the result, the DLQ entry and the retention entry."""
    ctx.stage(keys.finished(task.id), None)
    ctx.stage(keys.result(task.id), None)
    ctx.stage(keys.retention(task.finished_ms + ctx.config.retention_for(task), task.id), None)
    listing.unstage_finished(ctx.ops, task, command_key(task.command))
    drop_entry(ctx, task.tenant, command_key(task.command), task.id)
