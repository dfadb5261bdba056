"""`codeq serve` with tracing on, exporting to an in-process OTLP/HTTP receiver: a task's create,
claim, handler and result land in the producer's trace (issue 13 item 4)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from codeq.client import Job, Worker
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.process

PRODUCER = {"Authorization": "Bearer dev-producer"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[ReceivedSpan] = []
        self.callback_traceparents: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
                service = attributes.get("service.name", "")
                for scope in resource.scope_spans:
                    self.spans += [_received(span, service) for span in scope.spans]


def _received(span: Any, service: str) -> ReceivedSpan:
    ids = (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex())
    return ReceivedSpan(span.name, *ids, service)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        status = 404
        if self.path == "/v1/traces":
            self.server.add(body)
            status = 200
        elif self.path == "/callback":  # the task's result callback
            with self.server.lock:
                self.server.callback_traceparents.append(self.headers.get("traceparent", ""))
            status = 200
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


def until(probe: Callable[[], object], what: str, deadline_s: float = 20.0) -> None:
    """Poll the real process's effect, with a deadline."""
    deadline = time.monotonic() + deadline_s
    while not probe():
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_create_claim_handler_and_result_share_the_producers_trace(
    tmp_path: Path, receiver: Receiver
) -> None:
    env = {
        "TRACING_ENABLED": "true",
        "TRACING_OTLP_ENDPOINT": receiver.url,
        "SERVICE_NAME": "codeq-under-test",
        "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    }
    server = ServerProcess(tmp_path / "data", env=env)
    server.start()
    try:
        traceparent = f"00-{TRACE_ID}-{PRODUCER_SPAN}-01"
        created = httpx.post(
            f"{server.url}/v1/codeq/tasks",
            json={"command": "render", "payload": {"n": 1}, "webhook": f"{receiver.url}/callback"},
            headers={**PRODUCER, "traceparent": traceparent},
            timeout=10,
        )
        assert created.status_code == 202, created.text
        stored = created.json()["traceParent"]
        assert stored.split("-")[1] == TRACE_ID  # the create's own span, in the producer's trace

        seen: list[str] = []
        worker = Worker(server.url, "dev-worker", wait_seconds=0)

        @worker.handler("render")
        def render(job: Job) -> dict[str, int]:
            # The SDK runs the handler in the task's trace (no tracer provider here: the
            # stored context itself is current).
            seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
            return {"ok": 1}

        worker.run(burst=True, handle_signals=False)
        assert seen == [TRACE_ID] and worker.stats.completed == 1
        until(lambda: receiver.callback_traceparents, "the result callback")
        (callback_traceparent,) = receiver.callback_traceparents
        assert callback_traceparent.split("-")[1] == TRACE_ID  # the callback carries the trace
        # A create without a trace context starts a trace of its own, which its task keeps.
        untraced = httpx.post(
            f"{server.url}/v1/codeq/tasks", json={"command": "x", "payload": {}}, headers=PRODUCER, timeout=10
        )
        assert untraced.json()["traceParent"].split("-")[1] != TRACE_ID
    finally:
        assert server.terminate() == 0  # shutting down exports the buffered spans

    in_trace = {span.name for span in receiver.spans if span.trace_id == TRACE_ID}
    assert {
        "HTTP POST /v1/codeq/tasks",
        "codeq.engine.apply",
        "codeq.task.claimed",
        "HTTP POST /v1/codeq/tasks/{id}/result",
        "codeq.task.finished",
        "codeq.webhook.deliver",
    } <= in_trace, in_trace
    (create,) = [
        s for s in receiver.spans if s.name == "HTTP POST /v1/codeq/tasks" and s.trace_id == TRACE_ID
    ]
    assert create.parent_span_id == PRODUCER_SPAN and create.service == "codeq-under-test"
    claimed = next(s for s in receiver.spans if s.name == "codeq.task.claimed")
    assert claimed.parent_span_id == create.span_id
    # The worker's claim request had no trace context: its span starts a trace of its own.
    claim_requests = [s for s in receiver.spans if s.name == "HTTP POST /v1/codeq/tasks/claim"]
    assert claim_requests and all(s.trace_id != TRACE_ID for s in claim_requests)
    assert any(s.name == "codeq.commit" for s in receiver.spans)


def test_a_grpc_worker_runs_its_handler_in_the_producers_trace(tmp_path: Path, receiver: Receiver) -> None:
    """The worker stream delivers the task's stored trace context (workerpb.Task fields 101 and
    102, a codeq extension) and the SDK's gRPC worker continues it, as its HTTP worker does."""
    stream_port = free_port()
    env = {"TRACING_ENABLED": "true", "TRACING_OTLP_ENDPOINT": receiver.url}
    server = ServerProcess(
        tmp_path / "data", args=["--worker-stream-addr", f"127.0.0.1:{stream_port}"], env=env
    )
    server.start()
    try:
        traceparent = f"00-{TRACE_ID}-{PRODUCER_SPAN}-01"
        created = httpx.post(
            f"{server.url}/v1/codeq/tasks",
            json={"command": "render", "payload": {"n": 1}},
            headers={**PRODUCER, "traceparent": traceparent},
            timeout=10,
        )
        assert created.status_code == 202, created.text
        seen: list[tuple[str, str]] = []
        worker = Worker(f"grpc://127.0.0.1:{stream_port}", "dev-worker", wait_seconds=0)

        @worker.handler("render")
        def render(job: Job) -> dict[str, int]:
            seen.append(
                (job.task.trace_parent, format(trace.get_current_span().get_span_context().trace_id, "032x"))
            )
            return {"ok": 1}

        worker.run(burst=True, handle_signals=False)
        assert worker.stats.completed == 1
        ((delivered, current),) = seen
        assert delivered == created.json()["traceParent"]  # what the create stored, over gRPC
        assert current == TRACE_ID  # the handler runs in the producer's trace
    finally:
        assert server.terminate() == 0
