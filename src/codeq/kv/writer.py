"""A store's writer thread: calls run one at a time, in order, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Call = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]


class WriterThread:
    """One thread taking calls from a queue, each answered on its caller's loop.

    What `run_in_executor` on a one-thread pool does, for a fraction of its cost: no
    `concurrent.futures.Future` chained to the asyncio one, no pool bookkeeping, one
    `call_soon_threadsafe` per call. A group commit crosses to it once per batch, and when the
    server is not busy a batch holds a request or two, so the crossing is paid per request
    (about 23 µs of CPU through the pool, 9 µs here, measured on uvloop).

    On Linux the thread runs under SCHED_BATCH: the store holds the GIL through a write and
    lets it go only in the fsync, and each wake-up of this thread wanting it back preempted
    the loop's thread on its CPU (docs/benchmarks.md, sixth session of 2026-12-05).

    The thread is a daemon, like the calls' store (which the owner closes through `run`):
    a process that exits without closing it is not held up by it.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._runner = threading.Thread(target=self._serve, name=name, daemon=True)
        self._started = False
        self._stopped = False

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`fn(*args)` on the thread, after every call submitted before it."""
        if self._stopped:
            raise RuntimeError("writer thread stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._started:
            self._started = True
            self._runner.start()
        self._calls.put((loop, future, fn, args))
        return future

    def stop(self) -> None:
        """Finish the calls queued so far, then end the thread (waits for it)."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._calls.put(None)
            self._runner.join()

    def _serve(self) -> None:
        _as_batch_thread()
        while True:
            call = self._calls.get()
            if call is None:
                return
            loop, future, fn, args = call
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # every failure must reach the waiting caller
                error = exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)


def _as_batch_thread() -> None:
    """Run this thread under SCHED_BATCH (Linux): its wake-ups (a batch queued, a write
    returned) then do not preempt the event loop's thread on its CPU; it runs when a CPU is
    free or the loop waits. Any process may lower its own thread's policy so."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
