"""The claim slots of a worker run: wait for one to free up, then take the others free at once."""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """A count of free slots, taken several at a time and given back one or many at a time.

    `take(most)` waits (first come, first served) until a slot is free, then takes it and
    every other slot free when it runs, up to `most`. A slot freed while others wait goes to
    the oldest waiter, and only to one at a time: slots given back one by one in the same
    loop turn (the tasks of a batch finishing together) then make one large claim, not one
    claim of a single task per waiting claimer.
    """

    def __init__(self, total: int) -> None:
        self._free = total
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._handed: asyncio.Future[None] | None = None  # a waiter handed a slot, not yet running

    @property
    def free(self) -> int:
        return self._free

    async def take(self, most: int) -> int:
        """Wait for a free slot; return how many were taken (1..most)."""
        if self._free and not self._waiting and self._handed is None:
            self._free -= 1
        else:
            await self._one_handed_over()
        extra = min(self._free, most - 1)
        self._free -= extra
        self._hand_over()  # what is left goes to the next in line
        return 1 + extra

    def give(self, count: int = 1) -> None:
        """Return `count` slots."""
        self._free += count
        self._hand_over()

    async def _one_handed_over(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                if future in self._waiting:
                    self._waiting.remove(future)
            else:  # handed a slot just as its taker gave up: not lost
                self._handed = None
                self._free += 1
            self._hand_over()
            raise
        self._handed = None

    def _hand_over(self) -> None:
        if self._handed is not None:
            return  # it takes what it can when it runs; the next waiter's turn comes after
        while self._free and self._waiting:
            future = self._waiting.popleft()
            if not future.done():  # done: cancelled, its taker not yet told
                future.set_result(None)
                self._free -= 1
                self._handed = future
                return
