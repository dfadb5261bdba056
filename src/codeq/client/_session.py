"""One run of a worker: claim while slots are free, start deliveries, and drain on the way out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from codeq.client._batching import ResultBatch
from codeq.client._errors import CodeqError, ConnectionFailed, RateLimited, ServerError
from codeq.client._execution import Context, Execution, Handler, cancelled_from_outside, is_async
from codeq.client._job import Job
from codeq.client._models import Task
from codeq.client._outcomes import Nack
from codeq.client._retry import Backoff
from codeq.client._slots import Slots

log = logging.getLogger("codeq.client._worker")


# Claims in flight at once, at most: enough to keep a server busy over one connection each.
MAX_CLAIMERS = 32


@dataclass(frozen=True, slots=True)
class SessionConfig:
    concurrency: int
    wait_seconds: int
    shutdown_timeout: float
    reconnect_max_seconds: float
    burst: bool
    batch_size: int = 1


class Session:
    """Claims one task per free slot (a long poll while idle), runs each as an `Execution`.

    With `batch_size` > 1 one claim takes up to that many tasks (as many as slots are free;
    there are `max(concurrency, batch_size)` of them, handlers still run `concurrency` at a
    time) and their completions and failures are acknowledged together (`ResultBatch`).

    `stop()` stops claiming at once and hands back claimed tasks still waiting for a handler;
    in-flight deliveries get `shutdown_timeout` seconds to finish, then are aborted and their
    tasks handed back. A second `stop()` aborts at once.
    """

    def __init__(self, ctx: Context, handlers: Mapping[str, Handler], config: SessionConfig) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.config = config
        self.stopping = asyncio.Event()
        self._abort_now = asyncio.Event()
        self._slots = Slots(max(config.concurrency, config.batch_size))
        # Each command's handler, and whether it runs on the loop, decided once, not per task.
        self._routes = {command: (fn, is_async(fn)) for command, fn in handlers.items()}
        self._running: dict[asyncio.Future[None], Execution] = {}
        self._claimer: asyncio.Future[None] | None = None

    async def run(self) -> None:
        self._claimer = asyncio.ensure_future(self._claim_all())
        try:
            await self._claimer
        except asyncio.CancelledError:
            if cancelled_from_outside():  # the caller cancelled run(): hand everything back
                self._abort_all()
                await asyncio.shield(self._settle())
                raise
        except BaseException:
            self.stopping.set()  # a fatal claim error: finish what is running, then raise
            await self._drain()
            raise
        await self._drain()

    def stop(self) -> None:
        if self.stopping.is_set():
            self._abort_now.set()
            return
        self.stopping.set()
        if self._claimer is not None:
            self._claimer.cancel()
        for execution in self._running.values():
            if execution.queued:
                execution.abort()

    async def _claim_all(self) -> None:
        """Several claim loops, so a free slot never waits for another slot's round trip."""
        slots = max(self.config.concurrency, self.config.batch_size)
        count = max(1, min(MAX_CLAIMERS, slots // self.config.batch_size))
        claimers = [asyncio.ensure_future(self._claim_loop()) for _ in range(count)]
        try:
            await asyncio.gather(*claimers)
        except BaseException:
            for claimer in claimers:
                claimer.cancel()
            await asyncio.gather(*claimers, return_exceptions=True)
            raise

    async def _claim_loop(self) -> None:
        backoff = Backoff(0.1, self.config.reconnect_max_seconds)
        idle = Backoff(0.05, 1.0)
        wait = 0 if self.config.burst else self.config.wait_seconds
        while True:
            slots = await self._slots.take(self.config.batch_size)
            started = time.monotonic()
            try:
                tasks = await self._claim(slots, wait)
            except CodeqError as exc:
                self._release(slots)
                if not _worth_retrying(exc):
                    raise
                self.ctx.stats.connection_errors += isinstance(exc, ConnectionFailed)
                delay = backoff.next_delay(exc.retry_after)
                log.warning("claim failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self._release(slots)
                raise
            backoff.reset()
            self._release(slots - len(tasks))
            if tasks:
                idle.reset()
                self._start_all(tasks)
                continue
            if self.config.burst:
                if not self._running:
                    return
                # Drained for now, but a running task may yet come back (abandon, nack 0):
                # claim again once one of them has reported.
                await asyncio.wait(list(self._running), return_when=asyncio.FIRST_COMPLETED)
                continue
            if wait == 0 or time.monotonic() - started < wait / 2:
                # Polling without a long poll, or an empty answer long before the wait ran
                # out (a server shutting down): pause rather than spin.
                await asyncio.sleep(idle.next_delay())

    def _release(self, slots: int) -> None:
        self._slots.give(slots)

    async def _claim(self, count: int, wait: int) -> list[Task]:
        transport, commands, lease = self.ctx.transport, list(self.handlers), self.ctx.lease_seconds
        if self.config.batch_size == 1:
            task = await transport.claim(commands, lease, wait)
            return [] if task is None else [task]
        return await transport.claim_many(commands, lease, wait, count)

    def _start_all(self, tasks: list[Task]) -> None:
        batch = ResultBatch(self.ctx.transport, len(tasks)) if self.config.batch_size > 1 else None
        for task in tasks:
            self._start(task, batch)

    def _start(self, task: Task, batch: ResultBatch | None) -> None:
        self.ctx.stats.claimed += 1
        job = Job(task, self.ctx.transport, self.ctx.lease_seconds)
        handler, on_loop = self._routes.get(task.command.strip().lower()) or _NO_HANDLER
        execution = Execution(job, handler, self.ctx, batch, on_loop)
        running = asyncio.get_running_loop().create_task(execution.run())
        self._running[running] = execution
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Future[None]) -> None:
        execution = self._running.pop(running)
        self._slots.give()
        if not running.cancelled() and running.exception() is not None:
            log.error("delivery of task %s failed", execution.job.id, exc_info=running.exception())

    async def _drain(self) -> None:
        """Let in-flight deliveries finish: without limit while draining a burst, then (once
        stopping) for `shutdown_timeout`; a second stop or the timeout aborts the rest."""
        if not self.stopping.is_set():
            await self._running_or(self.stopping, None)
        await self._running_or(self._abort_now, self.config.shutdown_timeout)
        if self._running:
            log.warning("shutdown: handing back %d unfinished task(s)", len(self._running))
            self._abort_all()
            await self._settle()

    async def _running_or(self, event: asyncio.Event, timeout: float | None) -> None:
        """Wait until every delivery is done, `event` is set, or `timeout` passes."""
        if not self._running or event.is_set():
            return
        everything = asyncio.ensure_future(asyncio.wait(list(self._running)))
        signalled = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({everything, signalled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            everything.cancel()
            signalled.cancel()

    def _abort_all(self) -> None:
        for execution in self._running.values():
            execution.abort()

    async def _settle(self) -> None:
        """Let aborted deliveries send their abandon, bounded since the server may be gone."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=self.ctx.lease_seconds)
        for running in list(self._running):
            running.cancel()


def _worth_retrying(error: CodeqError) -> bool:
    # A claim is safe to repeat: at worst a lost answer leaves one task leased until its
    # lease expires. Auth and request errors are fatal: retrying cannot fix them.
    return isinstance(error, ConnectionFailed | ServerError | RateLimited)


def _no_handler(job: Job) -> Nack:
    return Nack(reason=f"no handler for command {job.command!r} on this worker")


_NO_HANDLER = (_no_handler, False)
