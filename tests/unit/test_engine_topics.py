"""Topic commands in the engine: versioning, durability across a restart, replay determinism."""

from __future__ import annotations

import pytest

from codeq.core.errors import Unprocessable
from codeq.engine import commands as c
from tests.support.harness import TENANT, EngineHarness


def put(h: EngineHarness, name: str = "orders", **policy: object) -> c.PutTopic:
    fields: dict[str, object] = {"priority_tiers": [3, 1], "max_attempts": 5, "dead_letter_topic_ref": "dlq"}
    return c.PutTopic(now_ms=h.clock.now_ms(), tenant=TENANT, name=name, **{**fields, **policy})  # type: ignore[arg-type]


def test_put_get_delete_survive_a_restart() -> None:
    h = EngineHarness()
    first = h.apply(put(h))
    assert first.created and first.topic.version == 1
    assert first.topic.policy.priority_tiers == (1, 3)
    h.clock.advance(10)
    again = h.apply(put(h, max_attempts=6))
    assert not again.created and again.topic.version == 2
    assert again.topic.created_ms == first.topic.created_ms and again.topic.updated_ms == h.clock.now_ms()
    h.restart()
    assert h.engine.find_topic(TENANT, "orders") == again.topic
    assert h.engine.find_topic("globex", "orders") is None
    assert h.apply(c.DeleteTopic(now_ms=h.clock.now_ms(), tenant=TENANT, name="orders")).existed
    h.restart()
    assert h.engine.find_topic(TENANT, "orders") is None


def test_identical_put_writes_nothing() -> None:
    h = EngineHarness()
    h.apply(put(h))
    ops, outcome, _ = h.engine.apply(put(h, priority_tiers=[1, 3]))
    assert ops == {} and not outcome.created and outcome.topic.version == 1


def test_invalid_put_is_rejected_without_writes() -> None:
    h = EngineHarness()
    with pytest.raises(Unprocessable, match="priorities must be unique"):
        h.engine.apply(put(h, priority_tiers=[1, 1]))
    assert h.engine.find_topic(TENANT, "orders") is None


def test_commands_round_trip_for_replication() -> None:
    h = EngineHarness()
    command = put(h, retention_seconds=60, max_consumers=2)
    assert c.decode_command(c.encode_command(command)) == command
    delete = c.DeleteTopic(now_ms=1, tenant=TENANT, name="orders")
    assert c.decode_command(c.encode_command(delete)) == delete
    # Two replicas applying the same log agree on every byte they write.
    a, b = EngineHarness(), EngineHarness()
    for harness in (a, b):
        harness.apply(command)
    rows = list(a.kv.scan(b"T/", b"T0"))
    assert len(rows) == 1 and rows == list(b.kv.scan(b"T/", b"T0"))
