"""Where a shard process's creates go: its own shard, or the shard whose process claims them.

With a process per shard (ADR 0009) the kernel spreads connections over the processes, so one
process may take the producers and another the workers. A task created on a shard whose own
process has no worker for it is claimed over the channel, and its result forwarded there too:
two or more commands cross per batch of tasks where sending the create itself to another
shard costs one. So each process watches, per window, how many of the tasks claimed on its
shard were claimed by other processes: that share of its creates (less a dead band, so the
fairness rotation and noise move nothing) draws its ids for the other shards, whose workers
then claim them where they are. A window in which nothing was claimed here keeps the share.
"""

from __future__ import annotations

import random
from collections.abc import Callable

WINDOW_MS = 1_000
DEAD_BAND = 0.2  # claimed elsewhere up to this share: every create stays here
MIN_CLAIMED = 50  # fewer tasks claimed in a window than this: too few to judge


class Demand:
    """The share of creates sent away, from the claims on this process's shard."""

    def __init__(self, draw: Callable[[], float] = random.random) -> None:
        self._draw = draw
        self._start_ms = 0
        self._seen = (0, 0)  # the shard's (claimed, claimed by other processes) at the window's start
        self.away = 0.0

    def sends_away(self, claimed: int, by_others: int, now_ms: int) -> bool:
        """`claimed`: tasks claimed on this shard so far, `by_others`: of them, by other
        processes' claims. Whether this create (batch) goes to another shard."""
        if now_ms - self._start_ms >= WINDOW_MS:
            self._roll(claimed, by_others, now_ms)
        return self.away > 0.0 and self._draw() < self.away

    def _roll(self, claimed: int, by_others: int, now_ms: int) -> None:
        window_claimed, window_others = claimed - self._seen[0], by_others - self._seen[1]
        self._start_ms, self._seen = now_ms, (claimed, by_others)
        if window_claimed < MIN_CLAIMED:
            return  # nothing to judge by: keep the share (all sent away leaves nothing here)
        share = window_others / window_claimed
        self.away = max(0.0, (share - DEAD_BAND) / (1.0 - DEAD_BAND))
