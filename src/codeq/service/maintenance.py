"""The reaper: promotes due delayed tasks, expires leases and applies retention, per shard."""

from __future__ import annotations

import random

from codeq.core.clock import Clock
from codeq.engine import commands as c
from codeq.service.node import Node


class Maintenance:
    """One tick = one `Tick` command on every shard this node leads (leader-gated)."""

    def __init__(
        self, node: Node, clock: Clock, *, limit: int = 512, rng: random.Random | None = None
    ) -> None:
        self.node = node
        self.clock = clock
        self.limit = limit
        self._rng = rng or random.Random()

    async def tick(self) -> int | None:
        """Run one pass; returns when the next delayed task or lease falls due, if any."""
        now_ms = self.clock.now_ms()
        for shard in self.node.shards:
            if shard.replicator.is_leader:
                command = c.Tick(now_ms=now_ms, jitter_seed=self._rng.getrandbits(32), limit=self.limit)
                await shard.submit(command)
        due = [d for shard in self.node.shards if (d := shard.engine.index.next_due_ms()) is not None]
        return min(due) if due else None
