"""One timer for the leases of all the deliveries a worker holds, each due half a lease after it was taken."""

from __future__ import annotations

import asyncio
import math
from typing import Protocol


class Holder(Protocol):
    def heartbeat_due(self) -> None:
        """Its lease wants extending now."""


class LeaseKeeper:
    """Calls `heartbeat_due()` of each held delivery `delay` seconds after `hold()`, unless
    `release()` came first.

    A worker holds all its deliveries for the same half lease, so they fall due in the order
    they were held: one timer, set for the oldest, serves them all, where a timer each would
    cost a timer handle per task, made and cancelled (most tasks finish long before). A
    delivery held for less than the one before it gets a timer of its own.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop  # the running loop, looked up on first use
        self._due: dict[Holder, float] = {}  # oldest first, and so soonest first
        self._latest = -math.inf  # the due time of the newest entry of `_due`
        self._timer: asyncio.TimerHandle | None = None
        self._apart: dict[Holder, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._due) + len(self._apart)

    def hold(self, holder: Holder, delay: float) -> None:
        loop = self._loop or self._attach()
        due = loop.time() + delay
        if due < self._latest and self._due:
            self._apart[holder] = loop.call_at(due, self._fire_apart, holder)
            return
        self._due[holder] = self._latest = due
        if self._timer is None:
            self._timer = loop.call_at(due, self._fire)

    def release(self, holder: Holder) -> None:
        # Releasing the oldest leaves the timer set for it: it then fires early, finds
        # nothing due, and is set again for the next one.
        if self._due.pop(holder, None) is None:
            timer = self._apart.pop(holder, None)
            if timer is not None:
                timer.cancel()

    def _attach(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _fire(self) -> None:
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        while self._due:
            holder, due = next(iter(self._due.items()))
            if due > now:
                self._timer = self._loop.call_at(due, self._fire)
                return
            del self._due[holder]
            holder.heartbeat_due()

    def _fire_apart(self, holder: Holder) -> None:
        del self._apart[holder]
        holder.heartbeat_due()
