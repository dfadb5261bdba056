"""Stream message metrics and spans: each received event timed and counted by stream and kind."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from codeq.observability.metrics import Metrics
from codeq.transport.grpc.stream import Handler
from codeq.wire.pb import producerpb_pb2, workerpb_pb2

if TYPE_CHECKING:  # tracing imports OpenTelemetry, which only the `otel` extra installs
    from codeq.observability.tracing import Tracing


def _kinds(event: type[Message]) -> dict[int, str]:
    return {field.number: field.name for field in event.DESCRIPTOR.fields}


# An event is a oneof and nothing else, so its first byte is the tag of the one field set:
# the kind without parsing the message a second time.
KINDS = {"producer": _kinds(producerpb_pb2.ProducerEvent), "worker": _kinds(workerpb_pb2.WorkerEvent)}


def event_kind(stream: str, raw: bytes) -> str:
    return KINDS[stream].get(raw[0] >> 3, "unknown") if raw else "empty"


class StreamObserver:
    def __init__(self, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self._metrics = metrics
        self._tracing = tracing

    def wrap(self, stream: str, handle: Handler) -> Handler:
        """`handle`, timed; inside a span per message when tracing is on."""
        tracing = self._tracing
        if tracing is None:
            return self._timed(stream, handle)

        async def traced(raw: bytes) -> None:
            kind = event_kind(stream, raw)
            with tracing.span(f"gRPC {stream}.{kind}", {"rpc.system": "grpc", "codeq.stream": stream}):
                await handle(raw)

        return self._timed(stream, traced)

    def _timed(self, stream: str, handle: Handler) -> Handler:
        # The kinds are the event's oneof fields (and two more): a recorder bound for each up
        # front, so a message costs a dict lookup rather than a label resolution.
        metrics = self._metrics
        kinds = KINDS[stream]
        bound = {number: metrics.grpc_recorder(stream, kind) for number, kind in kinds.items()}
        unknown, empty = metrics.grpc_recorder(stream, "unknown"), metrics.grpc_recorder(stream, "empty")

        async def timed(raw: bytes) -> None:
            started = time.perf_counter()
            try:
                await handle(raw)
            finally:
                record = bound.get(raw[0] >> 3, unknown) if raw else empty
                record(time.perf_counter() - started)

        return timed
