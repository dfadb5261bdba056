"""One delivery on a worker: run the handler, keep its lease alive, send the outcome it decided."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from codeq.client._batching import ResultBatch
from codeq.client._errors import CodeqError, NotFound, NotInProgress, NotOwner, TaskCancelled
from codeq.client._job import Job
from codeq.client._leases import LeaseKeeper
from codeq.client._models import COMPLETED, FAILED, ResultSpec, result_object
from codeq.client._outcomes import Abandon, Fail, Nack, Outcome
from codeq.client._retry import RetryPolicy, retried, with_retries
from codeq.client._tracing import continued, traced
from codeq.client._transport import Transport

log = logging.getLogger("codeq.client._worker")

Handler = Callable[[Job], Any]
AckErrorHook = Callable[[Job, CodeqError], None]
AckHook = Callable[[Job, str], None]  # (job, "completed" | "failed" | "nacked" | "abandoned")
OnError = Literal["nack", "fail"]
_LEASE_GONE = (NotOwner, NotInProgress, NotFound)


@dataclass(slots=True)
class WorkerStats:
    """Counters of what a worker did since it was created."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    nacked: int = 0
    dead_lettered: int = 0
    abandoned: int = 0
    handler_errors: int = 0
    ack_errors: int = 0  # outcomes or heartbeats the server refused, or that never got through
    connection_errors: int = 0
    acknowledged: int = 0  # outcomes the server accepted, of every kind
    cancelled: int = 0  # tasks an admin cancelled while this worker held them: dropped


@dataclass(frozen=True, slots=True)
class _Complete:
    result: Any


@dataclass(slots=True)
class Context:
    """What every delivery of one worker run shares."""

    transport: Transport
    executor: Executor
    lease_seconds: int
    on_error: OnError
    stats: WorkerStats
    on_ack_error: AckErrorHook | None = None
    on_ack: AckHook | None = None
    ack_retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Handlers running at once, where more tasks than that may be claimed (and kept leased) at
    # a time; None where the claims alone keep within the limit.
    handler_slots: asyncio.Semaphore | None = None
    leases: LeaseKeeper = field(default_factory=LeaseKeeper)


class Execution:
    """Runs one handler call for one job; `abort()` cancels it and hands the task back.

    With a `batch`, a completion or failure is submitted with the rest of the job's claimed
    batch; nacks and abandons always go alone.
    """

    def __init__(
        self,
        job: Job,
        handler: Handler,
        ctx: Context,
        batch: ResultBatch | None = None,
        on_loop: bool | None = None,
    ) -> None:
        self.job = job
        self._handler = handler
        self._on_loop = is_async(handler) if on_loop is None else on_loop  # else on a worker thread
        self._ctx = ctx
        self._batch = batch
        self._task: asyncio.Task[Any] | None = None
        self._deciding = False  # the handler phase, the only one `abort()` interrupts
        self._interrupted = False  # this execution cancelled its own task (abort, lease lost)
        self._heartbeat: asyncio.Future[None] | None = None
        self.aborted = False
        self.queued = False  # claimed, but waiting for one of the `concurrency` handler slots

    def run(self) -> Coroutine[Any, Any, None]:
        """The delivery, to run as a task of its own."""
        # The handler runs in this task itself and the lease keeper starts a heartbeat only
        # when one falls due: most tasks finish well inside half a lease, and a worker running
        # thousands of them a second should not pay for tasks they never need (nor for a
        # wrapping coroutine when there is no trace to continue).
        return self._run_traced() if traced(self.job.task) else self._run()

    async def _run_traced(self) -> None:
        with continued(self.job.task):
            await self._run()

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        self._schedule_heartbeat()
        outcome: Outcome | _Complete | None = None
        try:
            outcome = await self._decide()
        finally:
            self._ctx.leases.release(self)
            if self._heartbeat is not None:
                await self._stop_heartbeat()
            if self._batch is not None and not isinstance(outcome, _Complete | Fail):
                self._batch.decided()  # nothing for the batch: a result decides by its submit
        if outcome is not None:
            await self._send(outcome)

    def abort(self) -> None:
        """Stop waiting for the handler (a sync one keeps running on its thread, unheard)."""
        self.aborted = True
        self._interrupt()

    def _interrupt(self) -> None:
        if self._deciding and not self._interrupted and self._task is not None:
            self._interrupted = True
            self._task.cancel()

    async def _decide(self) -> Outcome | _Complete | None:
        """The outcome to send, or None when the lease is gone and nothing may be sent."""
        if self.aborted:  # aborted before the handler ever started
            return Abandon()
        self._deciding = True
        try:
            slots = self._ctx.handler_slots
            value = await (self._invoke() if slots is None else self._invoke_in_slot(slots))
            if isinstance(value, Nack | Abandon | Fail):
                return value
            result = result_object(value)
            msgspec.json.encode(result)  # a result that cannot be sent is the handler's error
            return _Complete(result)
        except asyncio.CancelledError:
            if not self._interrupted:
                if cancelled_from_outside():
                    raise
                return self._on_handler_error(RuntimeError("handler was cancelled"))
            self._interrupted = False
            task = asyncio.current_task()
            if task is not None and task.uncancel() > 0:  # cancelled from outside as well
                raise
            return Abandon() if self.aborted else None
        except Exception as exc:
            return self._on_handler_error(exc)
        finally:
            self._deciding = False

    async def _invoke_in_slot(self, slots: asyncio.Semaphore) -> Any:
        self.queued = True
        try:
            async with slots:  # takes a free slot without suspending
                self.queued = False
                return await self._invoke()
        finally:
            self.queued = False

    def _invoke(self) -> Awaitable[Any]:
        if self._on_loop:
            return self._handler(self.job)  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, self._handler, self.job)
        return loop.run_in_executor(self._ctx.executor, call)

    def _on_handler_error(self, exc: BaseException) -> Nack | Fail:
        self._ctx.stats.handler_errors += 1
        log.error("handler for %s task %s failed", self.job.command, self.job.id, exc_info=exc)
        text = f"{type(exc).__name__}: {exc}"[:1000]
        return Fail(text) if self._ctx.on_error == "fail" else Nack(reason=text)

    async def _send(self, outcome: Outcome | _Complete) -> None:
        stats = self._ctx.stats
        started = time.monotonic()
        try:
            try:
                await self._ack(outcome)
            except CodeqError as exc:
                retry = functools.partial(self._ack, outcome)
                await retried(retry, self._ctx.ack_retry, exc, started=started, repeatable=True, what="ack")
        except TaskCancelled:
            self._cancelled()
            return
        except CodeqError as exc:
            self._report(exc, f"{type(outcome).__name__.lstrip('_').lower()} was not accepted")
            return
        if isinstance(outcome, _Complete):
            stats.completed += 1
        elif isinstance(outcome, Fail):
            stats.failed += 1
        elif isinstance(outcome, Abandon):
            stats.abandoned += 1
        self._acknowledged(_OUTCOME_NAMES[type(outcome)])

    async def _ack(self, outcome: Outcome | _Complete) -> None:
        # Retrying an ack is safe: the server refuses a second one for the same delivery
        # (409), it never applies it twice.
        # Every ack presents this delivery's lease token: once another claim holds the task,
        # the server refuses it (NotOwner) instead of letting a stale outcome win.
        transport, task_id, token = self._ctx.transport, self.job.id, self.job.task.lease_token
        if isinstance(outcome, _Complete | Fail):
            if isinstance(outcome, _Complete):
                item = ResultSpec(task_id=task_id, status=COMPLETED, result=outcome.result, lease_token=token)
            else:
                item = ResultSpec(task_id=task_id, status=FAILED, error=outcome.message, lease_token=token)
            if self._batch is not None:
                await self._batch.submit(item)
            else:
                await transport.submit_result(task_id, item.status, item.result, item.error, token)
        elif isinstance(outcome, Nack):
            dead = await transport.nack(task_id, outcome.delay_seconds, outcome.reason, token)
            self._ctx.stats.nacked += 1
            self._ctx.stats.dead_lettered += dead
        else:
            await transport.abandon(task_id, token)

    def _schedule_heartbeat(self) -> None:
        self._ctx.leases.hold(self, self.job.lease_seconds / 2)

    def heartbeat_due(self) -> None:
        if self._deciding:  # a heartbeat matters only while the handler runs
            self._heartbeat = asyncio.ensure_future(self._extend_lease())

    async def _stop_heartbeat(self) -> None:
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _extend_lease(self) -> None:
        """Extend the lease by its full length, then do it again half a lease later."""
        interval = self.job.lease_seconds / 2
        policy = RetryPolicy(attempts=None, deadline_seconds=interval, max_seconds=interval / 2)
        try:
            await with_retries(self.job.heartbeat, policy, repeatable=True, what="heartbeat")
        except TaskCancelled:
            self._cancelled()
            self._interrupt()  # the handler's work is no longer wanted: stop it, send nothing
            return
        except _LEASE_GONE as exc:
            self.job.lease_lost = True
            self._report(exc, "lease lost")
            self._interrupt()
            return
        except CodeqError as exc:
            log.warning("heartbeat for task %s failed: %s", self.job.id, exc)
        self._schedule_heartbeat()

    def _cancelled(self) -> None:
        """An admin cancelled the task: the server finished it, nothing is retried (issue 14)."""
        self.job.lease_lost = True
        self._ctx.stats.cancelled += 1
        log.info("task %s was cancelled by an admin; dropped", self.job.id)

    def _acknowledged(self, outcome: str) -> None:
        self._ctx.stats.acknowledged += 1
        hook = self._ctx.on_ack
        if hook is None:
            return
        try:
            hook(self.job, outcome)
        except Exception:
            log.exception("on_ack hook failed")

    def _report(self, exc: CodeqError, what: str) -> None:
        self._ctx.stats.ack_errors += 1
        log.warning("task %s: %s: %s", self.job.id, what, exc)
        hook = self._ctx.on_ack_error
        if hook is None:
            return
        try:
            hook(self.job, exc)
        except Exception:
            log.exception("on_ack_error hook failed")


_OUTCOME_NAMES: dict[type[object], str] = {
    _Complete: "completed",
    Fail: "failed",
    Nack: "nacked",
    Abandon: "abandoned",
}


def is_async(handler: Handler) -> bool:
    """Async handlers run on the loop; everything else runs on a worker thread."""
    call = getattr(handler, "__call__", None)  # noqa: B004 — an instance with `async def __call__`
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def cancelled_from_outside() -> bool:
    """Whether the current task itself is being cancelled (not just something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
