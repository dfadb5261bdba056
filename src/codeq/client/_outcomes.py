"""What a handler may return instead of a result: retry later, hand back, or fail for good."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Nack:
    """Retry the task later. `delay` in seconds; None lets the server's backoff policy decide
    (0 retries at once). Spends the delivery: after `max_attempts` the task is dead-lettered,
    with `reason` as its error."""

    delay: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.delay is not None and self.delay < 0:
            raise ValueError("Nack delay must be >= 0")

    @property
    def delay_seconds(self) -> int | None:
        """The delay as the whole seconds the server takes, rounded up."""
        return None if self.delay is None else math.ceil(self.delay)


@dataclass(frozen=True, slots=True)
class Abandon:
    """Hand the task back at once without spending an attempt (e.g. this worker cannot run it now)."""


@dataclass(frozen=True, slots=True)
class Fail:
    """Finish the task as `FAILED` with `message` as its error; it is not retried."""

    message: str


Outcome = Nack | Abandon | Fail
