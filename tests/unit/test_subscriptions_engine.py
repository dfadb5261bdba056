"""Subscriptions in the engine: stored, recovered, owned, renewed and expired by commands."""

from __future__ import annotations

import pytest

from codeq.core.errors import NotFound
from codeq.engine import commands as c
from tests.support.harness import EngineHarness


def _create(h: EngineHarness, sub_id: str, ttl_ms: int = 60_000, **fields: object) -> None:
    values: dict[str, object] = {
        "tenant": "acme", "subject": "w1", "callback_url": "https://hooks.example.com/x",
        "event_types": ["Render"], "delivery_mode": "fanout", "group_id": "", "min_interval_seconds": 0,
    }  # fmt: skip
    values.update(fields)
    now = h.clock.now_ms()
    h.apply(c.SubscriptionCreate(now_ms=now, subscription_id=sub_id, expires_ms=now + ttl_ms, **values))  # type: ignore[arg-type]


def test_subscriptions_survive_a_restart_and_expire_by_command() -> None:
    h = EngineHarness()
    _create(h, "s1")
    _create(h, "s2", ttl_ms=10_000)
    _create(h, "s3", tenant="globex")
    h.restart()
    registry = h.engine.subscriptions
    assert [s.id for s in registry.active("acme", "render", h.clock.now_ms())] == ["s1", "s2"]
    assert registry.by_id["s1"].event_types == ["render"]
    h.clock.advance(11)
    assert [s.id for s in registry.active("acme", "render", h.clock.now_ms())] == ["s1"]
    removed = h.apply(c.SubscriptionExpire(now_ms=h.clock.now_ms())).removed
    assert removed == 1
    h.restart()
    assert sorted(h.engine.subscriptions.by_id) == ["s1", "s3"]


def test_only_the_owner_renews_or_deletes() -> None:
    h = EngineHarness()
    _create(h, "s1", ttl_ms=10_000)
    now = h.clock.now_ms()
    with pytest.raises(NotFound):
        h.apply(
            c.SubscriptionHeartbeat(
                now_ms=now, subscription_id="s1", tenant="acme", subject="w2", expires_ms=now
            )
        )
    with pytest.raises(NotFound):
        h.apply(c.SubscriptionDelete(now_ms=now, subscription_id="s1", tenant="globex", subject="w1"))
    renewed = c.SubscriptionHeartbeat(
        now_ms=now, subscription_id="s1", tenant="acme", subject="w1", expires_ms=now + 100_000
    )
    assert h.apply(renewed).expires_ms == now + 100_000
    h.clock.advance(50)
    # The renewal moved the expiry entry: the old one does not remove it.
    assert h.apply(c.SubscriptionExpire(now_ms=h.clock.now_ms())).removed == 0
    h.apply(c.SubscriptionDelete(now_ms=h.clock.now_ms(), subscription_id="s1", tenant="acme", subject="w1"))
    h.restart()
    assert h.engine.subscriptions.by_id == {}
