"""Time as an injected dependency: the one place that reads the wall clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that moves only when told to; for deterministic tests."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float = 0.0, *, ms: int = 0) -> int:
        self._now_ms += int(seconds * 1000) + ms
        return self._now_ms

    def set(self, now_ms: int) -> None:
        self._now_ms = now_ms
