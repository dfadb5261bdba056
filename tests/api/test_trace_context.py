"""The W3C trace context a create stores with its task (issue 13 item 4): when, and whose."""

from __future__ import annotations

import pytest

from codeq.core.trace import CURRENT_TRACE
from codeq.service.tasks import NewTask
from codeq.transport.grpc.convert import new_task
from codeq.wire.pb import producerpb_pb2 as ppb
from tests.api.conftest import PRODUCER, make_settings, running


async def test_with_tracing_off_a_create_stores_no_trace_context() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with running(make_settings()) as api:
        created = await api.post(
            "/tasks", {"command": "render", "payload": {}}, {**PRODUCER, "traceparent": traceparent}
        )
        assert created.status_code == 202
        assert "traceParent" not in created.json()
        assert api.app.tracing is None


OWN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SPAN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("current", "given", "stored"),
    [
        (("", ""), (OWN, "a=1"), ("", "")),  # tracing off: nothing is stored, whatever is sent
        ((SPAN, ""), ("", ""), (SPAN, "")),  # the create's own span
        ((SPAN, ""), (OWN, "a=1"), (OWN, "a=1")),  # the producer's context (a gRPC CreateTask)
        ((SPAN, ""), ("00-not-a-context", ""), (SPAN, "")),  # malformed: ignored
        ((SPAN, ""), (OWN, "x" * 513), (SPAN, "")),  # oversized tracestate: ignored
    ],
)
async def test_what_a_create_stores_as_its_trace_context(
    current: tuple[str, str], given: tuple[str, str], stored: tuple[str, str]
) -> None:
    async with running(make_settings()) as api:
        principal = api.app.services.auth.producer(PRODUCER["Authorization"])
        spec = NewTask(command="render", payload="{}", trace_parent=given[0], trace_state=given[1])
        token = CURRENT_TRACE.set(current)
        try:
            task, _ = await api.app.services.tasks.create(principal, spec)
        finally:
            CURRENT_TRACE.reset(token)
    assert (task.trace_parent, task.trace_state) == stored


def test_a_grpc_create_carries_the_producers_trace_context() -> None:
    create = ppb.CreateTask(command="render", payload=b"{}", trace_parent=OWN, trace_state="a=1")
    spec = new_task(create)
    assert (spec.trace_parent, spec.trace_state) == (OWN, "a=1")
