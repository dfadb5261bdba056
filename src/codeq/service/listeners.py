"""Delivering applied events to listeners: after the writes are durable, each listener in isolation.

A replicator publishes the events of a command only once its writes are durable (single node:
fsynced by the group committer; Raft: the entry committed and applied here). The hub calls
every listener with the same events; one that raises is logged and counted, and neither the
other listeners, nor the command's answer, nor a Raft replica's apply loop notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from codeq.engine.outcomes import Event, Finished, Ready, TaskEvent
from codeq.observability.metrics import Metrics

log = logging.getLogger("codeq.events")


class Listener(Protocol):
    def __call__(self, events: Sequence[Event], next_due_ms: int | None) -> None:
        """`events` of durable applies on one shard, in apply order; `next_due_ms`: that
        shard's earliest delayed-task or lease time, or None."""


class Listeners:
    """The node's listeners, by name, called in registration order."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._listeners: list[tuple[str, Listener]] = []
        self._metrics = metrics
        self._failed: set[str] = set()

    def add(self, name: str, listener: Listener) -> None:
        self._listeners.append((name, listener))

    def deliver(self, events: Sequence[Event], next_due_ms: int | None) -> None:
        for name, listener in self._listeners:
            try:
                listener(events, next_due_ms)
            except Exception:  # an observer's bug must not undo or stall a durable write
                self._contain(name)

    def _contain(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.record_listener_error(name)
        if name in self._failed:
            log.debug("event listener %s failed again", name, exc_info=True)
            return
        # Logged with its traceback once per listener: a broken one fails on every apply.
        self._failed.add(name)
        log.exception("event listener %s failed; later failures are only counted", name)


def on_due(wake_by: Callable[[int], None]) -> Listener:
    """Wake a background runner by the earliest time something falls due."""

    def listener(events: Sequence[Event], next_due_ms: int | None) -> None:
        if next_due_ms is not None:
            wake_by(next_due_ms)

    return listener


def on_ready(ready: Callable[[str, str], None]) -> Listener:
    """Tell `ready(tenant, command key)` whenever tasks became claimable there."""

    def listener(events: Sequence[Event], next_due_ms: int | None) -> None:
        for event in events:
            if isinstance(event, Ready):
                ready(event.tenant, event.command_key)

    return listener


def on_callback_owed(poke: Callable[[], None]) -> Listener:
    """Poke the callback runner when a finish owed a result callback (an outbox entry)."""

    def listener(events: Sequence[Event], next_due_ms: int | None) -> None:
        for event in events:
            if isinstance(event, Finished) and event.task.webhook:
                poke()
                return

    return listener


def task_metrics(metrics: Metrics) -> Listener:
    def listener(events: Sequence[Event], next_due_ms: int | None) -> None:
        for event in events:
            if isinstance(event, TaskEvent):
                metrics.record_task_event(event.kind, event.task)
            elif isinstance(event, Finished):
                metrics.record_finished(event.task)

    return listener
