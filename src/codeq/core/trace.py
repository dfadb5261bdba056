"""The W3C trace context of the work in progress: what a created task stores to continue its trace."""

from __future__ import annotations

from contextvars import ContextVar

# (traceparent, tracestate) of the current span; set only while tracing is on, so a create
# outside a traced request (or with tracing off) stores nothing.
CURRENT_TRACE: ContextVar[tuple[str, str]] = ContextVar("codeq_current_trace", default=("", ""))
