"""Waiting in a test's own event loop for something other tasks do: a bounded number of loop
turns (or short pauses, for work on other threads), never a sleep standing in for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], *, turns: int = 10_000, pause: float = 0.0) -> None:
    """Return once `condition()` holds; fail after `turns` loop turns of `pause` seconds each."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(pause)
    raise AssertionError("the condition never held")
