"""The W3C trace context of the work in progress: what a created task stores to continue its trace."""

from __future__ import annotations

import re
from contextvars import ContextVar

# (traceparent, tracestate) of the current span; set only while tracing is on, so a create
# outside a traced request (or with tracing off) stores nothing.
CURRENT_TRACE: ContextVar[tuple[str, str]] = ContextVar("codeq_current_trace", default=("", ""))

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
MAX_TRACESTATE_CHARS = 512  # W3C: at most 32 members, in practice well under this


def stored_context(given: tuple[str, str]) -> tuple[str, str]:
    """What a create stores: only while tracing is on (a current span exists), the producer's
    own context when it sent a well-formed one (a gRPC CreateTask may), else the create's span."""
    current = CURRENT_TRACE.get()
    parent, state = given
    if current[0] and _TRACEPARENT.fullmatch(parent) and len(state) <= MAX_TRACESTATE_CHARS:
        return parent, state
    return current
