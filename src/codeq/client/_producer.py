"""Producers: create tasks, read them back, and wait for their results."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from codeq.client._connect import connect
from codeq.client._errors import BatchIncomplete, BatchItemError, CodeqError, ResultNotReady
from codeq.client._loop import BlockingClient, LoopThread
from codeq.client._models import Result, Task, TaskSpec
from codeq.client._retry import RetryPolicy, with_retries
from codeq.client._tokens import Token
from codeq.client._transport import Transport

T = TypeVar("T")
BATCH_LIMIT = 100  # the server's `/tasks/batch` maximum (spec 02 §4.2)
RESULT_WAIT_LIMIT = 60  # the longest single wait the server grants on a result read (spec 02 §4.11)


class AsyncProducer:
    """Creates tasks on a codeq server and reads them back (asyncio).

    `token` is a producer token, or a function (sync or async) returning one: it is called
    again when the server answers 401 and shortly before a JWT's `exp` (HTTP URLs only).
    `timeout` bounds each request (long polls get their wait on top). Transient failures are
    retried up to `retries` times with exponential backoff
    and jitter, but only where a retry cannot create a task twice: connect failures always,
    other failures (lost answers, 5xx) for reads and for creates that carry an idempotency
    key. Errors are `codeq.client.CodeqError` subclasses.

    `base_url` is codeq's HTTP API, or `grpc://host:port` for its producer stream; then
    `get` and `result` go to the HTTP API at `http_url`. A task created over the stream is
    described from the request and the ack (which carries only its id): its timestamps are
    this client's and `replayed` is never set.

    Use as `async with AsyncProducer(url, token) as producer: ...`, or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        token: Token,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: Transport | None = None,
        http_url: str | None = None,
    ) -> None:
        self._transport = transport or connect(base_url, token, timeout=timeout, http_url=http_url)
        self._token = token
        self._retry = RetryPolicy(attempts=retries + 1)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def token(self) -> Token:
        return self._token

    async def create(  # noqa: PLR0913 — one keyword per optional field of the create request
        self,
        command: str,
        payload: Any,
        *,
        priority: int = 0,
        delay_seconds: int | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> Task:
        """Create one task and return it (status `PENDING`).

        `payload` is any JSON-encodable value. `priority` is 0..9 (9 first). `run_at`
        (timezone-aware) or `delay_seconds` postpone the first delivery. `max_attempts`
        bounds deliveries (server default when None). With `idempotency_key`, a repeat
        within 24 h returns the first task with `replayed=True` instead of creating another.
        `webhook` is called with the result when the task finishes.
        """
        spec = TaskSpec(
            command=command,
            payload=payload,
            priority=priority,
            delay_seconds=delay_seconds,
            run_at=run_at,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            webhook=webhook,
        )
        return await self._call(lambda: self._transport.create(spec), idempotency_key is not None, "create")

    async def create_many(self, tasks: Iterable[TaskSpec | Mapping[str, Any]]) -> list[Task | CodeqError]:
        """Create many tasks, sent in chunks of 100; one outcome per input, in input order.

        An item the server rejects is a `BatchItemError` (with its `index`) in the returned
        list; the others are created. A failure of a whole request raises: its own error if
        nothing was created yet, else `BatchIncomplete` carrying the outcomes so far.
        """
        specs = [item if isinstance(item, TaskSpec) else TaskSpec(**item) for item in tasks]
        outcomes: list[Task | CodeqError] = []
        for offset in range(0, len(specs), BATCH_LIMIT):
            chunk = specs[offset : offset + BATCH_LIMIT]
            repeatable = all(spec.idempotency_key for spec in chunk)
            try:
                items = await self._call(
                    functools.partial(self._transport.create_batch, chunk), repeatable, "batch"
                )
            except CodeqError as exc:
                if not outcomes:
                    raise
                raise BatchIncomplete(exc, outcomes) from exc
            for item in items:
                if isinstance(item, BatchItemError):
                    item.index += offset
            outcomes.extend(items)
        return outcomes

    async def get(self, task_id: str) -> Task:
        """The task as it stands now; `NotFound` if there is no such task in your tenant."""
        return await self._call(lambda: self._transport.get_task(task_id), True, "get")

    async def result(self, task_id: str, wait: float = 0) -> Result:
        """The task's result, waiting up to `wait` seconds for it to be written.

        Raises `ResultNotReady` when there is still no result after `wait`, and `NotFound`
        when the task does not exist. Dead-lettered tasks have a `FAILED` result.
        """
        deadline = time.monotonic() + max(wait, 0)
        while True:
            remaining = math.ceil(deadline - time.monotonic())
            step = min(max(remaining, 0), RESULT_WAIT_LIMIT)
            try:
                return await self._call(
                    functools.partial(self._transport.get_result, task_id, step), True, "result"
                )
            except ResultNotReady:
                if time.monotonic() >= deadline or step == 0:
                    raise

    async def aclose(self) -> None:
        """Close the connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _call(self, operation: Callable[[], Awaitable[T]], repeatable: bool, what: str) -> T:
        return await with_retries(operation, self._retry, repeatable=repeatable, what=what)


class Producer(BlockingClient[AsyncProducer]):
    """The blocking twin of `AsyncProducer`, safe to share between threads.

    It runs an `AsyncProducer` on a private event loop thread; every method blocks until
    the answer arrives. Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        base_url: str,
        token: Token,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: Transport | None = None,
        http_url: str | None = None,
    ) -> None:
        self._loop = LoopThread("codeq-producer")
        self._async = AsyncProducer(
            base_url, token, timeout=timeout, retries=retries, transport=transport, http_url=http_url
        )

    @property
    def base_url(self) -> str:
        return self._async.base_url

    @property
    def token(self) -> Token:
        return self._async.token

    def create(  # noqa: PLR0913 — one keyword per optional field of the create request
        self,
        command: str,
        payload: Any,
        *,
        priority: int = 0,
        delay_seconds: int | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> Task:
        """Create one task; see `AsyncProducer.create`."""
        return self._loop.run(
            self._async.create(
                command,
                payload,
                priority=priority,
                delay_seconds=delay_seconds,
                run_at=run_at,
                max_attempts=max_attempts,
                idempotency_key=idempotency_key,
                webhook=webhook,
            )
        )

    def create_many(self, tasks: Iterable[TaskSpec | Mapping[str, Any]]) -> list[Task | CodeqError]:
        """Create many tasks in chunks of 100; see `AsyncProducer.create_many`."""
        return self._loop.run(self._async.create_many(list(tasks)))

    def get(self, task_id: str) -> Task:
        """The task as it stands now; see `AsyncProducer.get`."""
        return self._loop.run(self._async.get(task_id))

    def result(self, task_id: str, wait: float = 0) -> Result:
        """The task's result, waiting up to `wait` seconds; see `AsyncProducer.result`."""
        return self._loop.run(self._async.result(task_id, wait))
