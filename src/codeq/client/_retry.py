"""When and how long to wait before trying a failed request again: exponential backoff, full jitter."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from codeq.client._errors import CodeqError, ConnectionFailed, ServerError

log = logging.getLogger("codeq.client")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to `attempts` tries, or until `deadline_seconds` after the first, whichever ends first."""

    attempts: int | None = 4
    deadline_seconds: float | None = None
    base_seconds: float = 0.1
    max_seconds: float = 10.0


# One generator for every Backoff: seeding a new Random per call costs ~10 µs, and a
# Backoff is built for every request that might be retried.
_RNG = random.Random()


class Backoff:
    """Exponential delays with full jitter, so that many clients do not retry in step; the
    server's Retry-After, when it sends one, is a floor."""

    def __init__(self, base_seconds: float, max_seconds: float, rng: random.Random | None = None) -> None:
        self.base = base_seconds
        self.cap = max_seconds
        self.failures = 0
        self._rng = rng or _RNG

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return max(self._rng.uniform(0, ceiling), retry_after or 0.0)

    def reset(self) -> None:
        self.failures = 0


def is_transient(error: CodeqError, *, repeatable: bool) -> bool:
    """Whether trying again may succeed without doing the work twice.

    A connect failure never reached the server, so anything may be resent. Other failures
    (a lost answer, a 5xx that may follow an applied write) are retried only when the request
    is `repeatable`: a read, or a write the server deduplicates or refuses to apply twice.
    """
    if isinstance(error, ConnectionFailed):
        return repeatable or not error.request_sent
    return repeatable and isinstance(error, ServerError)


async def with_retries(
    operation: Callable[[], Awaitable[T]], policy: RetryPolicy, *, repeatable: bool, what: str
) -> T:
    """Run `operation`, retrying transient failures under `policy`; the last error propagates."""
    started = time.monotonic()
    try:
        return await operation()
    except CodeqError as exc:
        failure = exc
    return await retried(operation, policy, failure, started=started, repeatable=repeatable, what=what)


async def retried(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    failure: CodeqError,
    *,
    started: float,
    repeatable: bool,
    what: str,
) -> T:
    """`with_retries` after a first attempt, begun at `started` (`time.monotonic()`), failed
    with `failure`: a caller that makes the first attempt itself pays for the retry machinery
    only when it fails, as few do."""
    backoff = Backoff(policy.base_seconds, policy.max_seconds)
    tries = 1
    while True:
        if not is_transient(failure, repeatable=repeatable) or _exhausted(policy, tries, started):
            raise failure
        delay = backoff.next_delay(failure.retry_after)
        if policy.deadline_seconds is not None:
            delay = min(delay, max(started + policy.deadline_seconds - time.monotonic(), 0.0))
        log.info("%s failed (%s); retrying in %.2fs", what, failure, delay)
        await asyncio.sleep(delay)
        tries += 1
        try:
            return await operation()
        except CodeqError as exc:
            failure = exc


def _exhausted(policy: RetryPolicy, tries: int, started: float) -> bool:
    if policy.attempts is not None and tries >= policy.attempts:
        return True
    return policy.deadline_seconds is not None and time.monotonic() - started >= policy.deadline_seconds
