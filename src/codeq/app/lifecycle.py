"""The process lifecycle: what start-up opened, closed in exactly the reverse order at shutdown."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TypeVar

log = logging.getLogger("codeq.app")
T = TypeVar("T")


class Lifecycle:
    """An `AsyncExitStack` that names what it holds.

    Each resource registers its close the moment it is open, so a start-up that fails halfway
    closes exactly what it had opened; a close that fails is logged, the rest still run, and
    `aclose` then raises its error.
    `opened` and `closed` list the names in the order things happened.
    """

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self.opened: list[str] = []
        self.closed: list[str] = []

    def on_close(self, name: str, close: Callable[[], Awaitable[object]]) -> None:
        """Record `name` as open, and run `close` for it at shutdown."""
        self.opened.append(name)

        async def run() -> None:
            try:
                await close()
            except Exception:
                log.exception("closing %s failed", name)
                raise  # the stack still closes the rest, then re-raises
            finally:
                self.closed.append(name)

        self._stack.push_async_callback(run)

    async def enter(self, name: str, resource: AbstractAsyncContextManager[T]) -> T:
        """Enter `resource` now and exit it at shutdown."""
        value = await resource.__aenter__()
        self.on_close(name, lambda: resource.__aexit__(None, None, None))
        return value

    async def aclose(self) -> None:
        """Close everything still open, last opened first."""
        await self._stack.aclose()
