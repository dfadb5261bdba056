"""Claiming: promote what is due, then hand out the best ready tasks under fresh leases.

The index says which tasks come next (highest priority, then earliest ready, across the
requested commands — spec 01 gap 10); their records, payload included, are read from the
store in one multi-get, changed and written back (issue 18: payloads are not kept in memory).
"""

from __future__ import annotations

from codeq.core.model import Status, Task
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine import keys, records
from codeq.engine.context import ApplyContext
from codeq.engine.index import Index, Live, Queue
from codeq.engine.outcomes import Claimed, Ready, TaskEvent


def claim(ctx: ApplyContext, cmd: c.Claim) -> Claimed:
    promote_due(ctx, cmd.now_ms)
    index = ctx.index
    queues = _claim_queues(index, cmd)
    taken: list[Live] = []
    while len(taken) < cmd.count:
        live = _best(index, queues)
        if live is None:
            break
        index.take(live)
        taken.append(live)
    if not taken:
        return Claimed([])
    tasks = [ctx.load(taken[0])] if len(taken) == 1 else ctx.load_many(taken)
    for task in tasks:
        _lease(task, cmd)
        index.place(task, cmd.now_ms)
        ctx.ops[keys.live(task.id)] = records.encode_task(task)
        ctx.events.append(TaskEvent("claimed", task))
    return Claimed(tasks)


def _lease(task: Task, cmd: c.Claim) -> None:
    task.status = Status.IN_PROGRESS
    task.worker_id = cmd.worker_id
    task.attempts += 1
    task.lease_epoch += 1
    task.lease_until_ms = cmd.now_ms + cmd.lease_ms
    task.updated_ms = cmd.now_ms


def promote_due(ctx: ApplyContext, now_ms: int) -> int:
    """Make every delayed task that is due ready; only the index changes."""
    promoted = 0
    while (live := ctx.index.promote_due(now_ms)) is not None:
        ctx.events.append(Ready(live.queue.tenant, live.queue.cmd_key))
        promoted += 1
    return promoted


def _claim_queues(index: Index, cmd: c.Claim) -> list[Queue]:
    if cmd.commands is None:
        return list(index.by_tenant.get(cmd.tenant, {}).values())
    found = (index.queues.get((cmd.tenant, command_key(name))) for name in cmd.commands)
    return [queue for queue in found if queue is not None]


def _best(index: Index, queues: list[Queue]) -> Live | None:
    """Across the requested commands: highest priority, then earliest ready, then seq."""
    best: Live | None = None
    for queue in queues:
        live = index.head(queue)
        if live is not None and (best is None or _rank(live) < _rank(best)):
            best = live
    return best


def _rank(live: Live) -> tuple[int, int, int]:
    return (-live.priority, live.order_ms, live.seq)
