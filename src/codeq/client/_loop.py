"""A private event loop on a daemon thread, so blocking wrappers can run the async SDK from any thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on its own loop. Callers on any thread (including one that runs its
    own event loop) block until the result is ready; the async client lives on this loop
    only, so its connection pool is never shared between loops."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking codeq call cannot run on the SDK's own loop")
        if self._closed:
            coro.close()
            raise RuntimeError("this codeq client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class _Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class BlockingClient(Generic[C]):
    """The blocking twin of an async client: `_async` lives on the private `_loop`, and
    closing (directly or by leaving a `with` block) closes both."""

    _loop: LoopThread
    _async: C

    def close(self) -> None:
        """Close the connections and stop the private loop thread."""
        if self._loop.closed:
            return
        try:
            self._loop.run(self._async.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
