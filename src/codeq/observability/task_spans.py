"""Spans in a task's own trace: its claims and its finish, parented on the context its create stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from codeq.engine.outcomes import Event, Finished, TaskEvent

if TYPE_CHECKING:  # tracing imports OpenTelemetry, which only the `otel` extra installs
    from codeq.observability.tracing import Tracing


class TaskSpans:
    """A node listener (events arrive once durable): one span per claim and per finish of a
    task that stored a trace context, so the producer's trace shows its task's whole life."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    def __call__(self, events: Sequence[Event], next_due_ms: int | None) -> None:
        for event in events:
            if isinstance(event, TaskEvent) and event.kind != "created" and event.task.trace_parent:
                task = event.task
                self._tracing.stored(
                    f"codeq.task.{event.kind}",
                    task.trace_parent,
                    task.trace_state,
                    {
                        "codeq.task_id": task.id,
                        "codeq.command": task.command,
                        "codeq.worker_id": task.worker_id,
                    },
                )
            elif isinstance(event, Finished) and event.task.trace_parent:
                task = event.task
                self._tracing.stored(
                    "codeq.task.finished",
                    task.trace_parent,
                    task.trace_state,
                    {
                        "codeq.task_id": task.id,
                        "codeq.command": task.command,
                        "codeq.status": task.status.value,
                    },
                )
