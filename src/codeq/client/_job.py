"""The handle a worker's handler receives: the claimed task and a way to extend its lease."""

from __future__ import annotations

import asyncio
from typing import Any

from codeq.client._models import Task
from codeq.client._transport import Transport


class Job:
    """One delivery of a task to this worker.

    The worker extends the lease by itself while the handler runs; `heartbeat()` does it
    on demand. `lease_lost` turns True when the server reports the lease gone (another
    worker may now hold the task); the worker then cancels an async handler and sends
    nothing for this delivery.
    """

    def __init__(self, task: Task, transport: Transport, lease_seconds: int) -> None:
        self.task = task
        self.lease_seconds = lease_seconds
        self.lease_lost = False
        self._transport = transport
        self._loop = asyncio.get_running_loop()

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def command(self) -> str:
        return self.task.command

    @property
    def payload(self) -> Any:
        """The task's payload, decoded from JSON."""
        return self.task.payload

    @property
    def attempts(self) -> int:
        """Deliveries so far, this one included (1 on the first)."""
        return self.task.attempts

    @property
    def max_attempts(self) -> int:
        return self.task.max_attempts

    async def heartbeat(self, extend_seconds: int | None = None) -> None:
        """Extend the lease to `extend_seconds` (default: the worker's lease) from now.

        Raises `NotOwner` or `NotInProgress` when the lease is already gone.
        """
        await self._transport.heartbeat(self.id, extend_seconds or self.lease_seconds, self.task.lease_token)

    def heartbeat_sync(self, extend_seconds: int | None = None) -> None:
        """`heartbeat()` for synchronous handlers, which run on worker threads."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("on the worker's event loop use `await job.heartbeat()`")
        asyncio.run_coroutine_threadsafe(self.heartbeat(extend_seconds), self._loop).result()

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, command={self.command!r}, attempts={self.attempts})"
