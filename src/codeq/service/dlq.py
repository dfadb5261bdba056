"""Dead-letter tools for admins (spec 01 gap 5): list with paging, requeue, purge."""

from __future__ import annotations

import asyncio

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import FIELD, InvalidInput
from codeq.core.model import Task
from codeq.engine import commands as c
from codeq.engine.shards import shard_of
from codeq.service.node import Node

MAX_PAGE = 500
DEFAULT_PAGE = 50
STEP = 1000  # tasks moved per command when acting on the whole DLQ


class DlqService:
    def __init__(self, node: Node, clock: Clock) -> None:
        self.node = node
        self.clock = clock

    async def page(
        self, principal: Principal, command: str, after: str, limit: int
    ) -> tuple[list[Task], str]:
        """A page of dead-lettered tasks of the caller's tenant in id order, and the cursor of the
        next page ("" when this is the last)."""
        principal.require_admin()
        name = _command(command)
        if limit <= 0:
            limit = DEFAULT_PAGE
        if limit > MAX_PAGE:
            raise InvalidInput(f"limit exceeds maximum of {MAX_PAGE}", field="limit")
        # Each shard's entries are in id order: merge the first `limit + 1` of each.
        pages = await asyncio.gather(
            *(s.read("dlq_page", principal.tenant, name, after, limit + 1) for s in self.node.shards)
        )
        merged: list[Task] = [task for found in pages for task in found]
        merged.sort(key=lambda task: task.id)
        page = merged[:limit]
        return page, page[-1].id if len(merged) > limit else ""

    async def requeue(self, principal: Principal, command: str, task_ids: list[str], every: bool) -> int:
        """Back to PENDING with attempts reset; returns how many tasks moved."""
        return await self._act(principal, command, task_ids, every, c.DlqRequeue)

    async def purge(self, principal: Principal, command: str, task_ids: list[str], every: bool) -> int:
        """Delete dead-lettered tasks and their results; returns how many."""
        return await self._act(principal, command, task_ids, every, c.DlqPurge)

    async def _act(
        self,
        principal: Principal,
        command: str,
        task_ids: list[str],
        every: bool,
        kind: type[c.DlqRequeue] | type[c.DlqPurge],
    ) -> int:
        principal.require_admin()
        name = _command(command)
        if every == bool(task_ids):
            raise InvalidInput(f"give either {FIELD} or all=true", field="task_ids")
        tenant = principal.tenant
        total = 0
        if not every:
            by_shard: dict[int, list[str]] = {}
            for task_id in task_ids:
                by_shard.setdefault(shard_of(task_id, len(self.node.shards)), []).append(task_id)
            for number, ids in by_shard.items():
                cmd = kind(now_ms=self.clock.now_ms(), tenant=tenant, command=name, task_ids=ids)
                outcome = await self.node.shards[number].submit(cmd)
                total += outcome.count
            return total
        for shard in self.node.shards:
            while True:  # in steps, so one command never grows into a huge write
                cmd = kind(now_ms=self.clock.now_ms(), tenant=tenant, command=name, all=True, limit=STEP)
                outcome = await shard.submit(cmd)
                total += outcome.count
                if outcome.count < STEP:
                    break
        return total


def _command(command: str) -> str:
    name = command.strip()
    if not name:
        raise InvalidInput("command is required", field="command")
    return name
