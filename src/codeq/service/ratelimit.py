"""Token buckets per scope and operation, keyed by tenant and subject (spec 03 §6, gap 12).

Each node keeps its own buckets in memory: in a cluster of N nodes a caller that spreads its
requests over every node can get up to N times the configured rate (documented in the README).
The arithmetic is the reference's (§6.2): a bucket starts full, refills at requestsPerMinute/60
tokens a second up to burstSize, and a denied call learns how many whole seconds until one
token is back (at least 1). Unlike the reference, the key is the caller's tenant and subject
(configurable), not the bearer token string, so rotating tokens does not reset a bucket.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import RateLimited

PRODUCER, WORKER, ADMIN = "producer", "worker", "admin"
KEY_BY = ("tenant_subject", "tenant", "subject")
_IDLE_MS = 10 * 60 * 1000  # buckets untouched this long are forgotten ...
_PURGE_EVERY_MS = 5 * 60 * 1000  # ... by a sweep at most this often


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    requests_per_minute: int = 0
    burst_size: int = 0

    @property
    def enabled(self) -> bool:
        return self.requests_per_minute > 0 and self.burst_size > 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at_ms: int


class RateLimiter:
    def __init__(
        self,
        policies: dict[str, BucketPolicy],
        clock: Clock,
        key_by: str = "tenant_subject",
        on_hit: Callable[[str, str], None] | None = None,
    ) -> None:
        self._policies = {scope: p for scope, p in policies.items() if p.enabled}
        self._clock = clock
        self._key_by = key_by
        self._on_hit = on_hit
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._purged_ms = clock.now_ms()

    def check(self, principal: Principal, scope: str, operation: str) -> None:
        """Take one token of `scope` for the caller, or raise `RateLimited`."""
        policy = self._policies.get(scope)
        if policy is None:
            return
        now = self._clock.now_ms()
        if now - self._purged_ms >= _PURGE_EVERY_MS:
            self._purge(now)
        key = (scope, self._key(principal))
        retry_after = take(self._buckets, key, policy, now)
        if retry_after:
            if self._on_hit is not None:
                self._on_hit(scope, operation)
            raise RateLimited(scope, operation, retry_after)

    def _key(self, principal: Principal) -> str:
        if self._key_by == "tenant":
            return principal.tenant
        if self._key_by == "subject":
            return principal.subject
        return f"{principal.tenant}\0{principal.subject}"

    def _purge(self, now: int) -> None:
        self._purged_ms = now
        idle = [key for key, bucket in self._buckets.items() if now - bucket.at_ms >= _IDLE_MS]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class OutboundLimiter:
    """The reference's `rateLimit.webhook` bucket, keyed by the callback URL: how long a call
    to that URL must wait (0: go now, a token is taken)."""

    def __init__(self, policy: BucketPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._purged_ms = clock.now_ms()

    def wait_seconds(self, url: str) -> int:
        if not self._policy.enabled:
            return 0
        now = self._clock.now_ms()
        if now - self._purged_ms >= _PURGE_EVERY_MS:
            self._purged_ms = now
            for key in [k for k, b in self._buckets.items() if now - b.at_ms >= _IDLE_MS]:
                del self._buckets[key]
        return take(self._buckets, ("webhook", url), self._policy, now)


def take(
    buckets: dict[tuple[str, str], _Bucket], key: tuple[str, str], policy: BucketPolicy, now: int
) -> int:
    """Take a token: 0 when allowed, else the seconds until one is back (spec 03 §6.2)."""
    rate = policy.requests_per_minute / 60.0  # tokens per second
    capacity = float(policy.burst_size)
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = _Bucket(capacity, now)
    elapsed = max(now - bucket.at_ms, 0) / 1000  # a clock going backwards refills nothing
    bucket.tokens = min(capacity, bucket.tokens + elapsed * rate)
    bucket.at_ms = now
    if bucket.tokens >= 1:
        bucket.tokens -= 1
        return 0
    return max(1, math.ceil((1 - bucket.tokens) / rate))
