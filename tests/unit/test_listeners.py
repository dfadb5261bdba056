"""The node's listener hub: each listener in isolation, failures logged once and counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from codeq.core.model import Task
from codeq.engine.outcomes import Event, Finished, Ready
from codeq.observability.metrics import Metrics
from codeq.service.listeners import Listeners, on_callback_owed, on_due, on_ready


def test_a_failing_listener_is_logged_once_counted_always_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    hub = Listeners(metrics)
    heard: list[Event] = []

    def broken(events: Sequence[Event], next_due_ms: int | None) -> None:
        raise RuntimeError("observer bug")

    hub.add("broken", broken)
    hub.add("recorder", lambda events, due: heard.extend(events))
    with caplog.at_level(logging.ERROR, logger="codeq.events"):
        for _ in range(3):
            hub.deliver([Ready("t", "render")], None)
    assert len(heard) == 3
    assert [r.exc_info is not None for r in caplog.records] == [True]  # one traceback, not three
    samples = metrics.registry.get_sample_value("codeq_event_listener_errors_total", {"listener": "broken"})
    assert samples == 3


def test_adapters_hear_only_their_events() -> None:
    due: list[int] = []
    ready: list[tuple[str, str]] = []
    pokes: list[None] = []
    hub = Listeners()
    hub.add("due", on_due(due.append))
    hub.add("ready", on_ready(lambda tenant, key: ready.append((tenant, key))))
    hub.add("owed", on_callback_owed(lambda: pokes.append(None)))
    plain = Task(id="a", tenant="t", command="render", payload="{}")
    hooked = Task(id="b", tenant="t", command="render", payload="{}", webhook="http://x/y")
    hub.deliver([Ready("t", "render"), Finished(plain)], None)
    hub.deliver([Finished(hooked), Finished(hooked)], 1_000)
    assert due == [1_000] and ready == [("t", "render")] and len(pokes) == 1
