"""The reaper: promotes due delayed tasks, expires leases and applies retention, per shard."""

from __future__ import annotations

import logging
import random

from codeq.core.clock import Clock
from codeq.core.errors import NotLeader, OutcomeUnknown
from codeq.engine import commands as c
from codeq.service.node import Node

log = logging.getLogger("codeq.reaper")


class Maintenance:
    """One tick = one `Tick` command on every shard this node leads (leader-gated)."""

    def __init__(
        self, node: Node, clock: Clock, *, limit: int = 512, rng: random.Random | None = None
    ) -> None:
        self.node = node
        self.clock = clock
        self.limit = limit
        self._rng = rng or random.Random()
        # Sweeps cut short by a leadership change: expected, so counted and not logged as errors.
        self.not_leader_refusals = 0

    async def tick(self) -> int | None:
        """Run one pass; returns when the next delayed task or lease falls due, if any."""
        now_ms = self.clock.now_ms()
        for shard in self.node.local_shards:  # a process per shard: each sweeps its own
            if not shard.is_leader:  # the lease, checked before each proposal
                continue
            command = c.Tick(now_ms=now_ms, jitter_seed=self._rng.getrandbits(32), limit=self.limit)
            try:
                await shard.submit(command)
            except (NotLeader, OutcomeUnknown) as exc:
                # Leadership moved while the sweep was proposed (it lost its leader, or may yet
                # commit): the shard's next leader sweeps again; nothing here is an error.
                self.not_leader_refusals += 1
                log.debug("sweep of shard %d cut short by a leadership change: %s", shard.number, exc)
        due = [d for shard in self.node.local_shards if (d := shard.engine.index.next_due_ms()) is not None]
        return min(due) if due else None
