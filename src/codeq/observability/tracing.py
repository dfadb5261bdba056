"""OpenTelemetry tracing (the `otel` extra): one tracer provider per node, OTLP/HTTP export.

Imported only when `tracingEnabled` is on, so a server without the packages runs as before
and tracing costs nothing when off: every call site holds `None` instead of a `Tracing`.
W3C `traceparent`/`tracestate` arriving on a request become the parent of its span.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from codeq.config.tree import ObservabilitySettings
from codeq.core.trace import CURRENT_TRACE

_PROPAGATOR = TraceContextTextMapPropagator()
TRACES_PATH = "/v1/traces"
DEFAULT_SERVICE_NAME = ObservabilitySettings().service_name
Attributes = Mapping[str, str | int | float | bool]


@dataclass(slots=True)
class ActiveSpan:
    """A span made current for the code below it, to be ended by `Tracing.end`."""

    span: Span
    token: object
    trace_token: Token[tuple[str, str]]


class Tracing:
    """The node's tracer; spans for requests, stream messages, apply, commit, Raft and webhooks."""

    def __init__(self, settings: ObservabilitySettings, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create(_resource_attributes(settings.service_name))
        self.provider = TracerProvider(resource=resource, sampler=_sampler(settings.tracing_sample_ratio))
        span_exporter = exporter or OTLPSpanExporter(endpoint=_endpoint(settings.tracing_otlp_endpoint))
        self.provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self.tracer = self.provider.get_tracer("codeq")
        self.task_traces = TaskTraces()  # finished tasks' contexts, for their result callbacks

    def shutdown(self) -> None:
        """Export what is buffered, then stop (the lifecycle calls it at close)."""
        self.provider.shutdown()

    def begin(
        self, name: str, headers: Sequence[tuple[bytes, bytes]] = (), attributes: Attributes | None = None
    ) -> ActiveSpan:
        """Start a server span, parented on the W3C headers if any, and make it current."""
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in headers
            if key in (b"traceparent", b"tracestate")
        }
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        # What a task created under this span stores, so its claim and result join this trace.
        headers_out: dict[str, str] = {}
        _PROPAGATOR.inject(headers_out)
        current = (headers_out.get("traceparent", ""), headers_out.get("tracestate", ""))
        return ActiveSpan(span, token, CURRENT_TRACE.set(current))

    def end(self, active: ActiveSpan, attributes: Attributes, failed: bool = False) -> None:
        CURRENT_TRACE.reset(active.trace_token)
        otel_context.detach(active.token)  # type: ignore[arg-type]  # the token attach returned
        active.span.set_attributes(attributes)
        if failed:
            active.span.set_status(Status(StatusCode.ERROR))
        active.span.end()

    @contextmanager
    def span(self, name: str, attributes: Attributes | None = None) -> Iterator[Span]:
        """An internal span around a block, a child of whatever span is current."""
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def finished(self, name: str, seconds: float, attributes: Attributes) -> None:
        """A span for work already done (a group commit, a Raft round), ending now."""
        end_ns = time.time_ns()
        span = self.tracer.start_span(name, attributes=attributes, start_time=end_ns - int(seconds * 1e9))
        span.end(end_time=end_ns)

    def stored(self, name: str, trace_parent: str, trace_state: str, attributes: Attributes) -> None:
        """An instant span in the trace a task stored at its create (claim, finish)."""
        carrier = {"traceparent": trace_parent, "tracestate": trace_state}
        span = self.tracer.start_span(name, context=_PROPAGATOR.extract(carrier), attributes=attributes)
        span.end()

    @staticmethod
    def inject(headers: dict[str, str]) -> None:
        """Add `traceparent`/`tracestate` of the current span to outgoing headers."""
        _PROPAGATOR.inject(headers)


def _resource_attributes(service_name: str) -> dict[str, str]:
    """`serviceName`, unless it is the default and OTEL_SERVICE_NAME says otherwise."""
    if service_name == DEFAULT_SERVICE_NAME and os.environ.get("OTEL_SERVICE_NAME"):
        return {}  # Resource.create reads OTEL_SERVICE_NAME (and OTEL_RESOURCE_ATTRIBUTES)
    return {"service.name": service_name}


def _sampler(ratio: float) -> Sampler | None:
    """Parent-based with a trace-id ratio for new traces; OTEL_TRACES_SAMPLER, when set, wins."""
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None  # the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG itself
    return ParentBased(TraceIdRatioBased(ratio))


def _endpoint(configured: str) -> str | None:
    """The traces URL: `http://collector:4318` gets the OTLP/HTTP path; "" defers to OTEL_*."""
    if not configured:
        return None
    base = configured.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class TaskTraces:
    """The stored trace context of recently finished tasks with a result callback, so that the
    callback's delivery joins its task's trace. Bounded: the oldest are forgotten first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._contexts: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def remember(self, task_id: str, trace_parent: str, trace_state: str) -> None:
        self._contexts[task_id] = (trace_parent, trace_state)
        if len(self._contexts) > self._limit:
            self._contexts.popitem(last=False)

    def of(self, task_id: str) -> tuple[str, str] | None:
        return self._contexts.get(task_id)  # kept: a failed delivery is retried


class _CallbackTaskId(msgspec.Struct, rename="camel"):
    task_id: str = ""


_decode_task_id = msgspec.json.Decoder(_CallbackTaskId).decode


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...

    async def aclose(self) -> None: ...


class TracedPoster:
    """An outbound webhook poster whose deliveries are spans and carry `traceparent`; a result
    callback's span belongs to its task's trace."""

    def __init__(self, inner: Poster, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        attributes: dict[str, Any] = {"url.full": url.split("?", 1)[0]}
        parent = None
        stored = self._tracing.task_traces.of(_task_id(body))
        if stored is not None:
            parent = _PROPAGATOR.extract({"traceparent": stored[0], "tracestate": stored[1]})
        tracer = self._tracing.tracer
        with tracer.start_as_current_span(
            "codeq.webhook.deliver", context=parent, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            headers = dict(headers)
            self._tracing.inject(headers)
            status = await self._inner.post(url, body, headers)
            span.set_attribute("http.response.status_code", status)
            return status

    async def aclose(self) -> None:
        await self._inner.aclose()


def _task_id(body: bytes) -> str:
    """The task id of a result callback's body ("" for other bodies, e.g. queue-ready)."""
    try:
        return _decode_task_id(body).task_id
    except msgspec.DecodeError:
        return ""
