"""Background work: fire-and-forget tasks kept alive, and the periodic tick runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from codeq.core.errors import NotLeader, OutcomeUnknown

log = logging.getLogger("codeq.background")


class BackgroundTasks:
    """Holds references to fire-and-forget tasks so they are not collected mid-flight."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[object]] = set()

    def add(self, task: asyncio.Future[object]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed: %s", task.exception())

    async def join(self) -> None:
        """Wait until none is left, including any added while waiting."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


# One pass of background work: returns the wall-clock ms at which it wants to run again
# (None: no particular time, use the interval).
TickFn = Callable[[], Awaitable[int | None]]


class Runner:
    """Runs `tick` repeatedly: at the time it asks for, at least every `interval`, or when
    `poke()`d; a failed tick is logged and the runner carries on.

    As an async context manager it runs for the length of the `async with`: its one task never
    outlives the block that owns it.
    """

    def __init__(
        self, name: str, tick: TickFn, now_ms: Callable[[], int], *, interval_seconds: float = 1.0
    ) -> None:
        self.name = name
        self._tick = tick
        self._now_ms = now_ms
        self._interval = interval_seconds
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_wake_ms = 0
        # Ticks refused because leadership moved mid-tick: expected, so counted, not logged.
        self.not_leader_refusals = 0

    def wake_by(self, when_ms: int) -> None:
        """Make sure the next tick runs no later than `when_ms`."""
        if when_ms < self._next_wake_ms:
            self._next_wake_ms = when_ms
            self._poke.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def __aenter__(self) -> Runner:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def poke(self) -> None:
        self._poke.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._poke.clear()
            try:
                wanted_ms = await self._tick()
            except NotLeader:
                self.not_leader_refusals += 1
                log.debug("%s tick refused: leadership moved", self.name)
                wanted_ms = None
            except OutcomeUnknown as exc:  # its proposal outlived this node's leadership
                self.not_leader_refusals += 1
                log.info("%s tick cut short by a leadership change: %s", self.name, exc.message)
                wanted_ms = None
            except Exception:
                log.exception("%s tick failed", self.name)
                wanted_ms = None
            delay = self._interval
            if wanted_ms is not None:
                delay = min(delay, max((wanted_ms - self._now_ms()) / 1000, 0.0))
            self._next_wake_ms = self._now_ms() + int(delay * 1000)
            if delay <= 0:
                await asyncio.sleep(0)  # a backlog: go again, but let requests run first
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), delay)
