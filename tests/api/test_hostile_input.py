"""No input produces a 500: random JSON and bytes at every route, answered with a JSON 4xx or 2xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeq.app import App
from codeq.core.clock import FakeClock
from tests.api.conftest import PRODUCER, WORKER, make_settings

ROUTES = [
    ("POST", "/v1/codeq/tasks", PRODUCER),
    ("POST", "/v1/codeq/tasks/batch", PRODUCER),
    ("POST", "/v1/codeq/tasks/claim", WORKER),
    ("POST", "/v1/codeq/tasks/claim/batch", WORKER),
    ("POST", "/v1/codeq/tasks/{id}/heartbeat", WORKER),
    ("POST", "/v1/codeq/tasks/{id}/abandon", WORKER),
    ("POST", "/v1/codeq/tasks/{id}/nack", WORKER),
    ("POST", "/v1/codeq/tasks/{id}/result", WORKER),
    ("POST", "/v1/codeq/tasks/batch/results", WORKER),
    ("GET", "/v1/codeq/tasks/{id}", PRODUCER),
    ("GET", "/v1/codeq/tasks/{id}/result", PRODUCER),
    ("GET", "/v1/codeq/admin/queues/{id}", PRODUCER),
    ("POST", "/v1/codeq/admin/tasks/cleanup", PRODUCER),
    ("PUT", "/v1/codeq/admin/topics/{id}", PRODUCER),
    ("GET", "/v1/codeq/admin/topics/{id}", PRODUCER),
    ("DELETE", "/v1/codeq/admin/topics/{id}", PRODUCER),
    ("GET", "/v1/codeq/admin/dlq/{id}", PRODUCER),
    ("POST", "/v1/codeq/admin/dlq/{id}/requeue", PRODUCER),
    ("POST", "/v1/codeq/admin/dlq/{id}/purge", PRODUCER),
    ("POST", "/v1/codeq/admin/backup", PRODUCER),
    ("POST", "/v1/codeq/workers/subscriptions", WORKER),
    ("POST", "/v1/codeq/workers/subscriptions/{id}/heartbeat", WORKER),
]

# waitSeconds is left out on purpose: a long poll would hold an example for its whole window.
FIELDS = [
    "command", "payload", "priority", "webhook", "maxAttempts", "idempotencyKey", "runAt", "delaySeconds",
    "tasks", "commands", "leaseSeconds", "count", "extendSeconds", "reason", "status", "result",
    "error", "artifacts", "results", "taskId", "limit", "before", "name", "url", "contentBase64",
    "priorityTiers", "deadLetterTopicRef", "retentionSeconds", "maxConsumers",
    "taskIds", "all", "dest", "shard",
    "callbackUrl", "eventTypes", "ttlSeconds", "deliveryMode", "groupId", "minIntervalSeconds",
]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=12,
)
bodies = (
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)
ids = st.sampled_from(["x", "%00", "..", "a" * 300]) | st.text(
    alphabet="abc-0123456789", min_size=1, max_size=40
)


class Harness:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = App(make_settings(), clock=FakeClock())
        self.loop.run_until_complete(self.app.start())
        transport = httpx.ASGITransport(app=self.app.asgi)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://t", timeout=10)

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        coro = self.client.request(
            method, path, headers=headers, content=body if method in ("POST", "PUT") else None
        )
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.app.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(route=st.sampled_from(ROUTES), body=bodies, task_id=ids)
def test_no_input_produces_a_server_error(harness: Harness, route: Any, body: bytes, task_id: str) -> None:
    method, path, headers = route
    response = harness.request(method, path.replace("{id}", task_id), headers, body)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str)
