"""Micro-batching: calls made in the same event-loop turn travel as one batch message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
SendMany = Callable[[list[Item]], Awaitable[list[Any]]]


class Coalescer(Generic[Item]):
    """`await submit(item)` returns the answer for that item; every item submitted before
    the flusher runs goes out together through `send_many`, which answers each in order.

    A stream message costs far more than the bytes in it (on the server ~100 µs in
    grpc.aio), so many single creates or results become one CreateTaskBatch / ResultBatch
    without any caller waiting on a timer: the batch closes at the end of the loop turn.
    """

    def __init__(self, send_many: SendMany[Item], on_orphan: Callable[[Any], None] | None = None) -> None:
        self._send_many = send_many
        self._on_orphan = on_orphan  # gets the answers whose caller gave up meanwhile
        self._queued: list[tuple[Item, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((item, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await answer

    async def _flush(self) -> None:
        while self._queued:
            group, self._queued = self._queued, []
            sending = asyncio.ensure_future(self._send(group))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)
            await asyncio.sleep(0)  # let the callers woken in this turn join the next message

    async def _send(self, group: list[tuple[Item, asyncio.Future[Any]]]) -> None:
        try:
            answers = await self._send_many([item for item, _ in group])
        except Exception as exc:
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, answer in group:
                answer.cancel()
            raise
        for (_, answer), value in zip(group, answers, strict=True):
            if not answer.done():
                answer.set_result(value)
            elif self._on_orphan is not None:
                self._on_orphan(value)
