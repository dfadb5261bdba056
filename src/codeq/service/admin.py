"""Admin use cases: queue statistics, the tenant's overview and the cleanup of finished tasks."""

from __future__ import annotations

import asyncio

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import InvalidInput
from codeq.core.model import QueueStats
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.service.listing import TaskListingService
from codeq.service.node import Node
from codeq.service.ratelimit import ADMIN, RateLimiter
from codeq.service.shard_reads import QueueOverview


class AdminService:
    def __init__(self, node: Node, clock: Clock, limiter: RateLimiter | None = None) -> None:
        self.node = node
        self.clock = clock
        self.limiter = limiter if limiter is not None else RateLimiter({}, clock)
        self.tasks = TaskListingService(node, clock)  # listing and cancel (issue 14)

    async def queue_stats(self, principal: Principal, command: str) -> QueueStats:
        """Counts for one command in the caller's tenant, summed over shards."""
        principal.require_admin()
        name = command.strip()
        if not name:
            raise InvalidInput("command is required")
        key = command_key(name)
        counts = await asyncio.gather(*(s.queue_counts(principal.tenant, key) for s in self.node.shards))
        ready, delayed, in_progress, dlq = (sum(column) for column in zip(*counts, strict=True))
        return QueueStats(command=name, ready=ready, delayed=delayed, in_progress=in_progress, dlq=dlq)

    async def queues(self, principal: Principal) -> dict[str, int]:
        """Non-empty buckets of the caller's tenant only (spec 03 gap 7), reference labels."""
        principal.require_admin()
        labels: dict[str, int] = {}
        for found in await asyncio.gather(
            *(s.read("queue_labels", principal.tenant) for s in self.node.shards)
        ):
            for label, count in found.items():
                labels[label] = labels.get(label, 0) + count
        return dict(sorted(labels.items()))

    async def overview(self, principal: Principal) -> list[QueueOverview]:
        """Every command of the caller's tenant with its counts, summed over shards, by name.
        Counters only: the index's live counts and the engines' finish buckets, no scan."""
        principal.require_admin()
        now_ms = self.clock.now_ms()
        pages = await asyncio.gather(
            *(s.read("overview", principal.tenant, now_ms) for s in self.node.shards)
        )
        found: dict[str, QueueOverview] = {}
        for rows in pages:
            for row in rows:
                _add(found.setdefault(row.command, QueueOverview(row.command)), row)
        return [found[key] for key in sorted(found)]

    async def cleanup(self, principal: Principal, limit: int, before_ms: int | None) -> int:
        """Delete up to `limit` of the caller's tenant's finished tasks whose retention ended by
        `before_ms` (spec 03 gap 7: never another tenant's)."""
        principal.require_admin()
        self.limiter.check(principal, ADMIN, "cleanup")
        limit = limit if limit > 0 else 1000
        before = self.clock.now_ms() if before_ms is None else before_ms
        deleted = 0
        for shard in self.node.shards:
            command = c.Cleanup(
                now_ms=self.clock.now_ms(), before_ms=before, limit=limit - deleted, tenant=principal.tenant
            )
            outcome = await shard.submit(command)
            deleted += outcome.deleted
            if deleted >= limit:
                break
        return deleted


def _add(total: QueueOverview, row: QueueOverview) -> None:
    for name in _COUNTS:
        setattr(total, name, getattr(total, name) + getattr(row, name))


_COUNTS = tuple(f for f in QueueOverview.__dataclass_fields__ if f != "command")
