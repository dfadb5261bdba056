"""Admin use cases: queue statistics, the tenant's overview and the cleanup of finished tasks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import InvalidInput
from codeq.core.model import QueueStats
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.service.listing import TaskListingService
from codeq.service.node import Node
from codeq.service.ratelimit import ADMIN, RateLimiter


@dataclass(slots=True)
class QueueOverview:
    """One command of a tenant: its live counts now, and its finishes of the last minute and hour."""

    command: str
    ready: int = 0
    delayed: int = 0
    in_progress: int = 0
    dead_lettered: int = 0
    completed_1m: int = 0
    failed_1m: int = 0
    completed_1h: int = 0
    failed_1h: int = 0


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

    def queues(self, principal: Principal) -> dict[str, int]:
        """Non-empty buckets of the caller's tenant only (spec 03 gap 7), reference labels."""
        principal.require_admin()
        tenant = principal.tenant
        labels: dict[str, int] = {}

        def add(label: str, count: int) -> None:
            if count:
                labels[label] = labels.get(label, 0) + count

        for shard in self.node.every_local():
            index = shard.engine.index
            for key, queue in index.by_tenant.get(tenant, {}).items():
                base = f"codeq:q:{key}:{tenant}"
                for priority, count in enumerate(queue.ready_by_priority):
                    add(f"{base}:pending:{priority}", count)
                add(f"{base}:inprog", queue.in_progress)
                add(f"{base}:delayed", queue.delayed)
            for (owner, key), count in index.dlq_counts.items():
                if owner == tenant:
                    add(f"codeq:q:{key}:{tenant}:dlq", count)
        return dict(sorted(labels.items()))

    def overview(self, principal: Principal) -> list[QueueOverview]:
        """Every command of the caller's tenant with its counts, summed over shards, by name.
        Counters only: the index's live counts and the engines' finish buckets, no scan."""
        principal.require_admin()
        tenant, now_ms = principal.tenant, self.clock.now_ms()
        found: dict[str, QueueOverview] = {}
        for shard in self.node.every_local():
            engine = shard.engine
            index = engine.index
            for key, queue in index.by_tenant.get(tenant, {}).items():
                row = found.setdefault(key, QueueOverview(key))
                row.ready += queue.ready
                row.delayed += queue.delayed
                row.in_progress += queue.in_progress
            for (owner, key), count in index.dlq_counts.items():
                if owner == tenant and count:
                    found.setdefault(key, QueueOverview(key)).dead_lettered += count
            for key in engine.throughput.commands(tenant):
                _add_finishes(found.setdefault(key, QueueOverview(key)), engine, tenant, now_ms)
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


def _add_finishes(row: QueueOverview, engine: Engine, tenant: str, now_ms: int) -> None:
    completed_1m, failed_1m, completed_1h, failed_1h = engine.throughput.window(tenant, row.command, now_ms)
    row.completed_1m += completed_1m
    row.failed_1m += failed_1m
    row.completed_1h += completed_1h
    row.failed_1h += failed_1h
