"""The claim slots of a worker run: wait for one to free up, then take the others free at once."""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """A count of free slots, taken several at a time and given back one or many at a time.

    `take(most)` waits (first come, first served) until a slot is free, then takes it and
    every other slot free at that moment, up to `most`. It does what one `acquire()` of an
    `asyncio.Semaphore` per slot did, without a coroutine and a scan of the waiters per slot.
    """

    def __init__(self, total: int) -> None:
        self._free = total
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    async def take(self, most: int) -> int:
        if self._free and not self._waiting:
            self._free -= 1
        else:
            await self._one_handed_over()
        extra = min(self._free, most - 1)
        self._free -= extra
        return 1 + extra

    def give(self, count: int = 1) -> None:
        """Return `count` slots: the oldest waiters get one each, the rest are free."""
        self._free += count
        self._hand_over()

    async def _one_handed_over(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if not future.cancelled():
                self.give(1)  # handed over just as its taker gave up: not lost
            else:
                if future in self._waiting:
                    self._waiting.remove(future)
                self._hand_over()  # a slot freed while it stood first in line
            raise

    def _hand_over(self) -> None:
        waiting = self._waiting
        while self._free and waiting:
            future = waiting.popleft()
            if not future.done():  # done: cancelled, its taker not yet told
                future.set_result(None)
                self._free -= 1
