"""Workers: register a handler per command, then claim, run and acknowledge tasks until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import msgspec

from codeq.client._connect import connect
from codeq.client._environment import url_from_environment, worker_token_from_environment
from codeq.client._execution import AckErrorHook, AckHook, Context, Handler, OnError, WorkerStats
from codeq.client._retry import RetryPolicy
from codeq.client._session import Session, SessionConfig
from codeq.client._tokens import Token
from codeq.client._transport import Transport

H = TypeVar("H", bound=Handler)
MAX_WAIT_SECONDS = 30  # the longest claim long poll the server grants (spec 02 §8 C)
MAX_BATCH_SIZE = 256  # the most tasks one stream Ready may ask for (spec 07 gap 2)


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Settings to change on a worker before it runs (`configure`); None leaves one as it is."""

    base_url: str | None = None
    token: str | None = None
    concurrency: int | None = None
    batch_size: int | None = None
    lease_seconds: int | None = None
    shutdown_timeout: float | None = None


class AsyncWorker:
    """Runs handlers for claimed tasks (asyncio).

    Register a handler per command with `@worker.handler("render")` or
    `worker.register("render", fn)`. A handler takes a `Job` and may be `async def` (runs on
    the event loop) or a plain function (runs on one of `concurrency` worker threads). What it
    returns decides the outcome: a value completes the task (None → `{}`, a dict as is, any
    other value → `{"value": v}`); `Nack(delay, reason)`, `Abandon()` or `Fail(message)` do
    what they say. An exception nacks the task with the server's backoff, spending the
    attempt (dead-lettered after `max_attempts`), or with `on_error="fail"` fails it for good.

    At most `concurrency` handlers run at once; a task is claimed only when a slot is free,
    with a long poll of `wait_seconds` while idle. With `batch_size` > 1 one claim takes up to
    that many tasks, and their completions and failures are acknowledged in one request per
    claimed batch (nacks and abandons go one by one). Leases last `lease_seconds` and are
    extended by that much every half lease while a task is held. Connection failures, 5xx and
    429 on claims are retried with exponential backoff and jitter (capped at
    `reconnect_max_seconds`); leader redirects are followed. Each outcome the server accepted
    is counted in `stats.acknowledged` and passed to `on_ack(job, outcome)` if given (outcome
    is "completed", "failed", "nacked" or "abandoned"). Outcomes the server refuses, and
    leases lost, are counted in `stats.ack_errors`, logged, and passed to `on_ack_error(job,
    error)` if given. On stop, claiming ends at once and running handlers get
    `shutdown_timeout` seconds; those still running are then abandoned (handed back without
    spending an attempt), as are claimed tasks still waiting for a free handler.

    `base_url` is codeq's HTTP API, or `grpc://host:port` for its worker stream; left out, it
    is `$CODEQ_URL` (else `$CODEQ_BASE_URL`, else `http://localhost:8080`). `token` left out is
    `$CODEQ_TOKEN` (else `$CODEQ_WORKER_TOKEN`); `run()` refuses to start without one. `token`
    may be a function (sync or async) returning the token, for tokens that expire: it is
    called again when the server answers 401 and shortly before a JWT's `exp` (HTTP only).

    Each worker owns its leases apart from every other worker on the same token: it sends
    `worker_id` (default: `<host>-<pid>-<random>`, new for every worker object) as the
    instance that claims, and presents each task's lease token with its heartbeats and
    outcomes, so a worker whose lease ran out and was claimed again is refused instead of
    overwriting the new holder's outcome. A `transport` passed in keeps its own worker id.
    """

    def __init__(  # noqa: PLR0913 — each keyword is an independent, documented tuning knob
        self,
        base_url: str | None = None,
        token: Token | None = None,
        *,
        concurrency: int = 1,
        lease_seconds: int = 60,
        wait_seconds: int = MAX_WAIT_SECONDS,
        on_error: OnError = "nack",
        shutdown_timeout: float = 30.0,
        timeout: float = 10.0,
        reconnect_max_seconds: float = 30.0,
        on_ack_error: AckErrorHook | None = None,
        transport: Transport | None = None,
        batch_size: int = 1,
        on_ack: AckHook | None = None,
        http_url: str | None = None,
        worker_id: str | None = None,
    ) -> None:
        _check(concurrency >= 1, "concurrency must be at least 1")
        _check(1 <= batch_size <= MAX_BATCH_SIZE, f"batch_size must be 1..{MAX_BATCH_SIZE}")
        _check(lease_seconds >= 1, "lease_seconds must be at least 1")
        _check(0 <= wait_seconds <= MAX_WAIT_SECONDS, f"wait_seconds must be 0..{MAX_WAIT_SECONDS}")
        _check(on_error in ("nack", "fail"), "on_error must be 'nack' or 'fail'")
        self.base_url = url_from_environment(base_url)
        self.token = worker_token_from_environment(token)
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.on_error: OnError = on_error
        self.shutdown_timeout = shutdown_timeout
        self.timeout = timeout
        self.reconnect_max_seconds = reconnect_max_seconds
        self.on_ack_error = on_ack_error
        self.batch_size = batch_size
        self.on_ack = on_ack
        self.http_url = http_url
        self.worker_id = worker_id or default_worker_id()
        self.stats = WorkerStats()
        self._transport = transport
        self._handlers: dict[str, Handler] = {}
        self._session: Session | None = None

    @property
    def commands(self) -> list[str]:
        """The commands with a handler: the ones this worker claims."""
        return list(self._handlers)

    @property
    def running(self) -> bool:
        """Whether `run()` is in progress."""
        return self._session is not None

    def configure(self, settings: WorkerSettings) -> None:
        """Override, before `run()`, the settings given in `settings` (None keeps the current one).

        This is how `codeq worker --url/--token/--concurrency/...` adjusts a worker that an
        application module built with its own defaults.
        """
        if self._session is not None:
            raise RuntimeError("configure the worker before run()")
        changes = {k: v for k, v in msgspec.structs.asdict(settings).items() if v is not None}
        _check(changes.get("concurrency", 1) >= 1, "concurrency must be at least 1")
        _check(1 <= changes.get("batch_size", 1) <= MAX_BATCH_SIZE, f"batch_size must be 1..{MAX_BATCH_SIZE}")
        _check(changes.get("lease_seconds", 1) >= 1, "lease_seconds must be at least 1")
        _check(changes.get("shutdown_timeout", 0.0) >= 0, "shutdown_timeout must not be negative")
        for name, value in changes.items():
            setattr(self, name, value)

    def handler(self, command: str) -> Callable[[H], H]:
        """Decorator: `@worker.handler("render")` registers the function for `render` tasks."""

        def register(fn: H) -> H:
            self.register(command, fn)
            return fn

        return register

    def register(self, command: str, fn: Handler) -> None:
        """Run `fn(job)` for tasks of `command` (compared case-insensitively, as the server does)."""
        key = command.strip().lower()
        if not key:
            raise ValueError("command must not be blank")
        if key in self._handlers:
            raise ValueError(f"a handler for {command!r} is already registered")
        self._handlers[key] = fn

    async def run(self, *, burst: bool = False, handle_signals: bool = True) -> None:
        """Claim and run tasks until `stop()`, SIGTERM or SIGINT (a second one aborts at once).

        With `burst=True`, return as soon as a claim finds nothing (after the running
        handlers finish). Signals are handled only on the main thread and only while this
        runs. Raises the claim error when the server refuses the worker (bad token, scope).
        """
        if not self._handlers:
            raise RuntimeError("register at least one handler before run()")
        if self._session is not None:
            raise RuntimeError("this worker is already running")
        if not self.token and self._transport is None:
            raise ValueError("no token: pass token=..., or set CODEQ_TOKEN")
        transport = self._transport or connect(
            self.base_url, self.token, timeout=self.timeout, http_url=self.http_url, worker_id=self.worker_id
        )
        # Not a `with` block: its exit would wait for sync handlers that outlived the shutdown.
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="codeq-handler")
        self._session = Session(self._context(transport, executor), dict(self._handlers), self._config(burst))
        try:
            with _signals(self.stop) if handle_signals else contextlib.nullcontext():
                await self._session.run()
        finally:
            self._session = None
            executor.shutdown(wait=False, cancel_futures=True)
            if self._transport is None:
                await transport.aclose()

    def stop(self) -> None:
        """Ask a running worker to stop (call on its event loop; see `Worker.stop` for threads)."""
        if self._session is not None:
            self._session.stop()

    async def wait_until_stopping(self) -> None:
        """Return once the running worker has been asked to stop (by `stop()` or a signal)."""
        if self._session is None:
            raise RuntimeError("the worker is not running")
        await self._session.stopping.wait()

    def _context(self, transport: Transport, executor: ThreadPoolExecutor) -> Context:
        return Context(
            transport=transport,
            executor=executor,
            lease_seconds=self.lease_seconds,
            on_error=self.on_error,
            stats=self.stats,
            on_ack_error=self.on_ack_error,
            on_ack=self.on_ack,
            # The run never holds more than max(concurrency, batch_size) tasks: with no more
            # in a batch than `concurrency`, the handlers can never be more than that either.
            handler_slots=asyncio.Semaphore(self.concurrency) if self.concurrency < self.batch_size else None,
            # Worth retrying an outcome for as long as the lease could still be ours.
            ack_retry=RetryPolicy(
                attempts=None, deadline_seconds=self.lease_seconds, max_seconds=self.reconnect_max_seconds
            ),
        )

    def _config(self, burst: bool) -> SessionConfig:
        return SessionConfig(
            concurrency=self.concurrency,
            wait_seconds=self.wait_seconds,
            shutdown_timeout=self.shutdown_timeout,
            reconnect_max_seconds=self.reconnect_max_seconds,
            burst=burst,
            batch_size=self.batch_size,
        )


class Worker:
    """The blocking twin of `AsyncWorker`: same arguments, same handlers (sync or async).

    `run()` blocks the calling thread, running the worker on a fresh event loop; on the main
    thread SIGTERM and SIGINT stop it gracefully. `stop()` may be called from any thread.
    """

    def __init__(  # noqa: PLR0913 — the same knobs as AsyncWorker
        self,
        base_url: str | None = None,
        token: Token | None = None,
        *,
        concurrency: int = 1,
        lease_seconds: int = 60,
        wait_seconds: int = MAX_WAIT_SECONDS,
        on_error: OnError = "nack",
        shutdown_timeout: float = 30.0,
        timeout: float = 10.0,
        reconnect_max_seconds: float = 30.0,
        on_ack_error: AckErrorHook | None = None,
        transport: Transport | None = None,
        batch_size: int = 1,
        on_ack: AckHook | None = None,
        http_url: str | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._async = AsyncWorker(
            base_url,
            token,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            wait_seconds=wait_seconds,
            on_error=on_error,
            shutdown_timeout=shutdown_timeout,
            timeout=timeout,
            reconnect_max_seconds=reconnect_max_seconds,
            on_ack_error=on_ack_error,
            transport=transport,
            batch_size=batch_size,
            on_ack=on_ack,
            http_url=http_url,
            worker_id=worker_id,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def stats(self) -> WorkerStats:
        return self._async.stats

    @property
    def worker_id(self) -> str:
        """The instance name this worker claims as (see `AsyncWorker`)."""
        return self._async.worker_id

    @property
    def commands(self) -> list[str]:
        return self._async.commands

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def configure(self, settings: WorkerSettings) -> None:
        """Override settings before `run()`; see `AsyncWorker.configure`."""
        self._async.configure(settings)

    def handler(self, command: str) -> Callable[[H], H]:
        """Decorator registering a handler for `command`; see `AsyncWorker.handler`."""
        return self._async.handler(command)

    def register(self, command: str, fn: Handler) -> None:
        """Register a handler for `command`; see `AsyncWorker.register`."""
        self._async.register(command, fn)

    def run(self, *, burst: bool = False, handle_signals: bool = True) -> None:
        """Claim and run tasks until stopped; see `AsyncWorker.run`."""
        asyncio.run(self._run(burst, handle_signals))

    def stop(self) -> None:
        """Ask the running worker to stop, from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._async.stop)

    async def _run(self, burst: bool, handle_signals: bool) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._async.run(burst=burst, handle_signals=handle_signals)
        finally:
            self._loop = None


@contextlib.contextmanager
def _signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT call `stop` while inside; the previous handlers come back afterwards."""
    installed: list[tuple[signal.Signals, Any]] = []
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, stop)
            except (NotImplementedError, RuntimeError):  # e.g. Windows' event loops
                continue
            installed.append((sig, previous))
    try:
        yield
    finally:
        loop_ = asyncio.get_running_loop()
        for sig, previous in installed:
            loop_.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)


def default_worker_id() -> str:
    """`<host>-<pid>-<random>`: unique per worker object, and readable in the server's task
    listings (the host is cut so that the id stays within the server's 128 characters)."""
    host = "".join(ch for ch in socket.gethostname() if ch.isprintable() and not ch.isspace())[:64]
    return f"{host or 'worker'}-{os.getpid()}-{secrets.token_hex(4)}"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
