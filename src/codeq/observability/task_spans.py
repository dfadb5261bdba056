"""Spans in a task's own trace: its claims and its finish, parented on the context its create stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from codeq.core.model import Task
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
                self._span(f"codeq.task.{event.kind}", event.task, {"codeq.worker_id": event.task.worker_id})
            elif isinstance(event, Finished) and event.task.trace_parent:
                task = event.task
                self._span("codeq.task.finished", task, {"codeq.status": task.status.value})
                if task.webhook:  # its result callback's delivery joins the trace too
                    self._tracing.task_traces.remember(task.id, task.trace_parent, task.trace_state)

    def _span(self, name: str, task: Task, attributes: dict[str, str]) -> None:
        attributes = {"codeq.task_id": task.id, "codeq.command": task.command, **attributes}
        self._tracing.stored(name, task.trace_parent, task.trace_state, attributes)
