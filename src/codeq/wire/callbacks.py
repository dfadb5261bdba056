"""JSON bodies codeq POSTs to callers: result callbacks and queue-ready notifications (spec 01
§7.3, §9), wire-compatible with codeQ. Field order is the order on the wire."""

from __future__ import annotations

import msgspec


class ArtifactJSON(msgspec.Struct):
    name: str
    url: str


class ResultCallbackJSON(msgspec.Struct, rename="camel"):
    task_id: str
    event_type: str
    status: str
    result: msgspec.Raw | None  # the result object as stored; null when there is none
    error: str
    artifacts: list[ArtifactJSON] | None
    completed_at: str


class QueueReadyJSON(msgspec.Struct, rename="camel"):
    event_type: str
    available: bool
    queue_depth: int
    claim_url: str
    sent_at: str
    notification_id: str


_encode = msgspec.json.Encoder().encode


def encode(body: ResultCallbackJSON | QueueReadyJSON) -> bytes:
    return _encode(body)


def stored_result(result: str) -> msgspec.Raw | None:
    """A stored result's JSON text as the body carries it ("": null)."""
    return msgspec.Raw(result.encode()) if result else None
