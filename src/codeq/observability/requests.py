"""What every HTTP request leaves behind: its metrics, an access-log line, and (traced) a span.

The HTTP application calls `begin` once the route is resolved and `end` once the reply is
sent; the route template, never the raw path, labels everything (paths carry task ids).
With tracing and the access log off (the defaults) only the metrics remain: then `plain` is
true and the application records each request through a recorder it bound once per route
(`bind`), with no observation object, context variable or span per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextvars import Token
from typing import TYPE_CHECKING

from codeq.core.request_context import REQUEST_TENANT
from codeq.observability.metrics import Metrics

if TYPE_CHECKING:  # tracing imports OpenTelemetry, which only the `otel` extra installs
    from codeq.observability.tracing import ActiveSpan, Tracing

access_log = logging.getLogger("codeq.access")

# Records one request of a bound route: (status, seconds).
Recorder = Callable[[int, float], None]


def _record_nothing(status: int, seconds: float) -> None:
    """The recorder without metrics."""


class RequestObservation:
    __slots__ = ("route", "span", "started", "tenant_token")

    def __init__(
        self, route: str, started: float, span: ActiveSpan | None, tenant_token: Token[str] | None
    ) -> None:
        self.route = route
        self.started = started
        self.span = span
        self.tenant_token = tenant_token


class HttpObserver:
    def __init__(
        self, metrics: Metrics | None, *, access_log: bool = False, tracing: Tracing | None = None
    ) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._tracing = tracing
        self.plain = tracing is None and not access_log

    def bind(self, route: str, method: str) -> Recorder:
        """The recorder of requests to `route` (a template) by `method`, for the `plain` path."""
        if self._metrics is None:
            return _record_nothing
        return self._metrics.http_requests.bound(route, method).observe

    def begin(self, method: str, route: str, headers: Sequence[tuple[bytes, bytes]]) -> RequestObservation:
        span = None
        if self._tracing is not None:
            span = self._tracing.begin(
                f"HTTP {method} {route}", headers, {"http.request.method": method, "http.route": route}
            )
        # Only the access log reads the tenant: without it the request path skips the context.
        tenant_token = REQUEST_TENANT.set("") if self._access_log else None
        return RequestObservation(route, time.perf_counter(), span, tenant_token)

    def end(self, seen: RequestObservation, method: str, status: int, request_id: bytes) -> None:
        seconds = time.perf_counter() - seen.started
        if self._metrics is not None:
            self._metrics.observe_request(seen.route, method, status, seconds)
        if seen.span is not None and self._tracing is not None:
            self._tracing.end(seen.span, {"http.response.status_code": status}, failed=status >= 500)
        if seen.tenant_token is not None:
            tenant = REQUEST_TENANT.get()
            REQUEST_TENANT.reset(seen.tenant_token)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id.decode("latin-1"),
                    "tenant": tenant,
                    "method": method,
                    "route": seen.route,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                },
            )
