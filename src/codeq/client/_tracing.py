"""Continuing a task's trace in the worker, when OpenTelemetry is installed (it is optional).

A task created inside a traced request carries that trace's `traceParent`/`traceState`. The
worker runs its handler inside a span continuing it, and the acknowledgement it sends carries
the `traceparent` header, so the handler and the result join the producer's trace. Without
`opentelemetry-api`, or for a task without a trace context, nothing happens at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from codeq.client._models import Task

Headers = tuple[tuple[str, str], ...]
NO_HEADERS: Headers = ()
# True inside `continued`: requests elsewhere skip the propagator entirely (the hot path).
_CONTINUING: ContextVar[bool] = ContextVar("codeq_continuing_trace", default=False)

try:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: Any = TraceContextTextMapPropagator()
except ImportError:  # the SDK works without OpenTelemetry
    _PROPAGATOR = None


def traced(task: Task) -> bool:
    """Whether `continued(task)` would do anything (callers skip it otherwise: it is per task)."""
    return _PROPAGATOR is not None and bool(task.trace_parent)


@contextlib.contextmanager
def continued(task: Task) -> Iterator[None]:
    """Run the block inside a span continuing `task`'s trace (if it has one and OTel is here)."""
    if not traced(task):
        yield
        return
    parent = _PROPAGATOR.extract({"traceparent": task.trace_parent, "tracestate": task.trace_state})
    tracer = _trace.get_tracer("codeq.client")
    span = tracer.start_span(f"codeq.handle {task.command}", context=parent, kind=_trace.SpanKind.CONSUMER)
    # With no tracer provider configured the span is a no-op: the task's own context is then
    # the one passed on, so the acknowledgement still joins the producer's trace.
    current = _trace.set_span_in_context(span, parent) if span.get_span_context().is_valid else parent
    token = _context.attach(current)
    continuing = _CONTINUING.set(True)
    try:
        yield
    finally:
        _CONTINUING.reset(continuing)
        _context.detach(token)
        span.end()


def trace_headers() -> Headers:
    """`traceparent`/`tracestate` of the current span, for an outgoing request; () without one."""
    if _PROPAGATOR is None or not _CONTINUING.get():
        return NO_HEADERS
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return tuple(carrier.items()) if carrier else NO_HEADERS
