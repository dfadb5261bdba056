"""Token-bucket arithmetic (spec 03 §6.2) on an injected clock."""

from __future__ import annotations

import pytest

from codeq.auth.principal import Principal
from codeq.core.clock import FakeClock
from codeq.core.errors import RateLimited
from codeq.service.ratelimit import BucketPolicy, RateLimiter


def who(tenant: str = "acme", subject: str = "svc") -> Principal:
    return Principal(subject, tenant, frozenset(), (), is_admin=False, is_worker=False)


def limiter(clock: FakeClock, rpm: int = 60, burst: int = 2, key_by: str = "tenant_subject") -> RateLimiter:
    return RateLimiter({"producer": BucketPolicy(rpm, burst)}, clock, key_by)


def denied(lim: RateLimiter, principal: Principal | None = None) -> int:
    with pytest.raises(RateLimited) as caught:
        lim.check(principal or who(), "producer", "create_task")
    assert caught.value.scope == "producer" and caught.value.operation == "create_task"
    return caught.value.retry_after_seconds


def test_burst_then_refill() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60, burst=2)
    lim.check(who(), "producer", "create_task")
    lim.check(who(), "producer", "create_task")
    assert denied(lim) == 1
    clock.advance(0.5)  # half a token back
    assert denied(lim) == 1
    clock.advance(0.5)
    lim.check(who(), "producer", "create_task")


def test_retry_after_rounds_up_at_slow_rates() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=6, burst=1)  # one token every 10 s
    lim.check(who(), "producer", "create_task")
    assert denied(lim) == 10
    clock.advance(7.5)
    assert denied(lim) == 3  # ceil(2.5)
    clock.advance(2.5)
    lim.check(who(), "producer", "create_task")


def test_capacity_caps_the_refill() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=600, burst=3)
    clock.advance(3600)
    for _ in range(3):
        lim.check(who(), "producer", "create_task")
    assert denied(lim) == 1


def test_clock_going_backwards_refills_nothing() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60, burst=1)
    lim.check(who(), "producer", "create_task")
    clock.advance(-30)
    assert denied(lim) == 1


@pytest.mark.parametrize(
    ("key_by", "shared"),
    [("tenant_subject", False), ("tenant", True), ("subject", False)],
)
def test_keys(key_by: str, shared: bool) -> None:
    lim = limiter(FakeClock(), burst=1, key_by=key_by)
    lim.check(who("acme", "a"), "producer", "create_task")
    other_subject = who("acme", "b")
    if shared:
        denied(lim, other_subject)
    else:
        lim.check(other_subject, "producer", "create_task")
    lim.check(who("globex", "a2"), "producer", "create_task")  # another tenant, its own bucket


def test_disabled_scopes_never_limit() -> None:
    clock = FakeClock()
    lim = RateLimiter({"producer": BucketPolicy(60, 0), "worker": BucketPolicy(0, 5)}, clock)
    for _ in range(100):
        lim.check(who(), "producer", "create_task")
        lim.check(who(), "worker", "claim")
    assert len(lim) == 0


def test_idle_buckets_are_purged() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    lim.check(who("acme", "a"), "producer", "create_task")
    clock.advance(11 * 60)
    lim.check(who("acme", "b"), "producer", "create_task")
    assert len(lim) == 1  # a's idle bucket went with the sweep
