"""The tracer: W3C parents, the context a create stores, spans for finished work, OTEL_* names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codeq.config.tree import ObservabilitySettings
from codeq.core.trace import CURRENT_TRACE
from codeq.observability.tracing import Tracing, _endpoint, _resource_attributes

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def exported() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(ObservabilitySettings(tracing_enabled=True), exporter)
    yield tracing, exporter
    tracing.shutdown()


def spans(tracing: Tracing, exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    tracing.provider.force_flush()
    return {span.name: span for span in exporter.get_finished_spans()}


def test_a_request_span_continues_the_callers_trace_and_is_what_a_create_stores(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = exported
    active = tracing.begin("HTTP POST /v1/codeq/tasks", [(b"traceparent", PARENT.encode())])
    stored_parent, _ = CURRENT_TRACE.get()
    with tracing.span("codeq.engine.apply"):
        pass
    tracing.end(active, {"http.response.status_code": 202})
    assert CURRENT_TRACE.get() == ("", "")  # nothing leaks to the next request
    by_name = spans(tracing, exporter)
    request, apply = by_name["HTTP POST /v1/codeq/tasks"], by_name["codeq.engine.apply"]
    assert request.context is not None and apply.parent is not None and request.parent is not None
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert format(request.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert apply.parent.span_id == request.context.span_id
    assert stored_parent == f"00-{TRACE_ID}-{format(request.context.span_id, '016x')}-01"
    # A span in the stored trace (a claim, later, elsewhere) hangs off the create's span.
    tracing.stored("codeq.task.claimed", stored_parent, "", {"codeq.task_id": "t1"})
    claimed = spans(tracing, exporter)["codeq.task.claimed"]
    assert claimed.parent is not None and claimed.parent.span_id == request.context.span_id


def test_failed_requests_are_error_spans_and_finished_work_keeps_its_duration(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = exported
    tracing.end(tracing.begin("HTTP GET /x"), {"http.response.status_code": 500}, failed=True)
    tracing.finished("codeq.commit", 0.25, {"codeq.commit.commands": 7})
    by_name = spans(tracing, exporter)
    assert not by_name["HTTP GET /x"].status.is_ok
    commit = by_name["codeq.commit"]
    assert commit.end_time is not None and commit.start_time is not None
    assert commit.end_time - commit.start_time == 250_000_000
    assert commit.attributes == {"codeq.commit.commands": 7}


def test_the_endpoint_gets_the_otlp_path_and_otel_names_fill_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert _endpoint("http://collector:4318/v1/traces/") == "http://collector:4318/v1/traces"
    assert _endpoint("") is None  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT then decides
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert _resource_attributes("codeq") == {"service.name": "codeq"}
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert _resource_attributes("codeq") == {}
    assert _resource_attributes("queue") == {"service.name": "queue"}
