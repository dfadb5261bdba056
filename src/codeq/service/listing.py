"""Admin task tools (issue 14): a queue's tasks by state, page by page, and cancelling a task."""

from __future__ import annotations

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import InvalidInput, NotFound
from codeq.core.model import Task
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine import listing
from codeq.engine.engine import Engine
from codeq.service.node import Node

MAX_PAGE = 500
DEFAULT_PAGE = 50
ORDERS = ("newest", "oldest")
STATES = listing.STATES


class TaskListingService:
    def __init__(self, node: Node, clock: Clock) -> None:
        self.node = node
        self.clock = clock

    def page(
        self, principal: Principal, command: str, state: str, order: str, cursor: str, limit: int
    ) -> tuple[list[Task], str]:
        """A page of the caller's tenant's tasks of `command` in `state`, and the cursor of the
        next page ("" on the last). Served from the engines' indexes: no scan of the queue."""
        principal.require_admin()
        query = _query(principal.tenant, command, state, order, cursor, limit)
        # Each shard gives its first `limit + 1` in order; the merge keeps the first `limit`.
        merged: list[tuple[listing.Entry, Task]] = []
        for shard in self.node.shards:
            merged += _shard_page(shard.engine, query)
        merged.sort(key=lambda pair: pair[0], reverse=query.newest)
        page = merged[: query.limit - 1]
        next_cursor = _cursor(page[-1][0]) if len(merged) >= query.limit else ""
        return [task for _, task in page], next_cursor

    async def cancel(self, principal: Principal, task_id: str) -> Task:
        """Cancel a task of the caller's tenant (engine/cancel.py says what that does)."""
        principal.require_admin()
        command = c.Cancel(now_ms=self.clock.now_ms(), tenant=principal.tenant, task_id=task_id)
        outcome = await self.node.shard_for(task_id).submit(command)
        return outcome.task


def _query(tenant: str, command: str, state: str, order: str, cursor: str, limit: int) -> listing.PageQuery:
    name = command.strip()
    if not name:
        raise InvalidInput("command is required", field="command")
    if state not in listing.STATES:
        raise InvalidInput(f"invalid 'state' (one of {', '.join(listing.STATES)})", field="state")
    if order not in ORDERS:
        raise InvalidInput("invalid 'order' (newest or oldest)", field="order")
    if limit > MAX_PAGE:
        raise InvalidInput(f"limit exceeds maximum of {MAX_PAGE}", field="limit")
    limit = limit if limit > 0 else DEFAULT_PAGE
    after = _parse_cursor(cursor) if cursor else None
    return listing.PageQuery(tenant, command_key(name), state, after, order == "newest", limit + 1)


def _shard_page(engine: Engine, query: listing.PageQuery) -> list[tuple[listing.Entry, Task]]:
    found: list[tuple[listing.Entry, Task]] = []
    if query.state in listing.LIVE_STATES:
        entries = engine.index.listed(query)
        tasks = engine.live_tasks([entry[2] for entry in entries])  # read from the store (issue 18)
        return list(zip(entries, tasks, strict=True))
    for entry in listing.finished_page(engine.store, query):
        try:
            found.append((entry, engine.find_task(entry[2], query.tenant)))
        except NotFound:  # removed since the index entry was read: skip it
            continue
    return found


def _cursor(entry: listing.Entry) -> str:
    return f"{entry[0]}:{entry[1]}:{entry[2]}"


def _parse_cursor(cursor: str) -> listing.Entry:
    order_ms, _, rest = cursor.partition(":")
    seq, _, task_id = rest.partition(":")
    if not order_ms.isdigit() or not seq.isdigit() or not task_id:
        raise InvalidInput("invalid 'cursor'", field="cursor")
    return int(order_ms), int(seq), task_id
