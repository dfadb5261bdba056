"""Deep nesting and invalid UTF-8 inside `payload` or `result` are a 400 naming the field, not a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeq.transport.json_input import MAX_JSON_DEPTH
from tests.api.conftest import PRODUCER, WORKER
from tests.api.test_hostile_input import Harness

# Bytes that are never valid UTF-8 wherever they stand, and sequences cut short.
BAD_UTF8 = st.sampled_from([b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"])


def nested(depth: int, open_: str = "[", leaf: str = "1") -> str:
    """A JSON value `depth` containers deep (`[[1]]` is two)."""
    close = "]" if open_ == "[" else "}"
    opener = open_ if open_ == "[" else '{"k":'
    return opener * depth + leaf + close * depth


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.fixture(scope="module")
def task_id(harness: Harness) -> str:
    """A task the worker holds, so result routes reach their body."""
    body = json.dumps({"command": "render", "payload": {}}).encode()
    assert harness.request("POST", "/v1/codeq/tasks", PRODUCER, body).status_code == 202
    claimed = harness.request("POST", "/v1/codeq/tasks/claim", WORKER, b"{}")
    assert claimed.status_code == 200
    return str(claimed.json()["id"])


def bodies(task: str, value: bytes, other_task: str = "") -> list[tuple[str, dict[str, str], bytes, str]]:
    """(path, headers, body, field named) for each route carrying free JSON, `value` inside;
    the batch results name `other_task` (default `task`)."""
    done = b'"status":"COMPLETED","result":' + value
    in_batch = b'{"taskId":"' + (other_task or task).encode() + b'",' + done + b"}"
    return [
        ("/v1/codeq/tasks", PRODUCER, b'{"command":"render","payload":' + value + b"}", "payload"),
        ("/v1/codeq/tasks/batch", PRODUCER, b'{"tasks":[{"command":"r","payload":' + value + b"}]}", "tasks"),
        (f"/v1/codeq/tasks/{task}/result", WORKER, b"{" + done + b"}", "result"),
        ("/v1/codeq/tasks/batch/results", WORKER, b'{"results":[' + in_batch + b"]}", "results"),
    ]


def assert_refused(harness: Harness, task: str, value: bytes, reason: str) -> None:
    for path, headers, body, field in bodies(task, value):
        response = harness.request("POST", path, headers, body)
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        assert response.json()["field"] == field, (path, response.text[:200])
        assert reason in response.json()["error"], (path, response.text[:200])


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(depth=st.integers(MAX_JSON_DEPTH, 20_000), open_=st.sampled_from(["[", "{"]))
def test_nesting_deeper_than_the_limit_is_a_400_naming_the_field(
    harness: Harness, task_id: str, depth: int, open_: str
) -> None:
    value = nested(depth, "{") if open_ == "{" else nested(depth)
    value = '{"v":' + value + "}"  # a result must be an object; this one is depth + 1 deep
    assert_refused(harness, task_id, value.encode(), f"nested deeper than {MAX_JSON_DEPTH} levels")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    before=st.text(max_size=8).map(lambda t: json.dumps(t)[1:-1].encode()),
    bad=BAD_UTF8,
    in_key=st.booleans(),
)
def test_invalid_utf8_in_payload_or_result_is_a_400_naming_the_field(
    harness: Harness, task_id: str, before: bytes, bad: bytes, in_key: bool
) -> None:
    text = b'"' + before + bad + b'"'
    value = b"{" + text + b":1}" if in_key else b'{"k":[' + text + b"]}"
    assert_refused(harness, task_id, value, "not valid UTF-8")


def claimed(harness: Harness) -> str:
    """A fresh task the worker holds (its own command, so no other test's task is claimed)."""
    body = json.dumps({"command": "limit", "payload": {}}).encode()
    assert harness.request("POST", "/v1/codeq/tasks", PRODUCER, body).status_code == 202
    claim = json.dumps({"commands": ["limit"]}).encode()
    response = harness.request("POST", "/v1/codeq/tasks/claim", WORKER, claim)
    assert response.status_code == 200
    return str(response.json()["id"])


def test_a_value_exactly_at_the_limit_is_accepted_on_every_route(harness: Harness) -> None:
    # `{"v": …}` plus MAX_JSON_DEPTH - 1 levels inside is MAX_JSON_DEPTH; brackets inside strings
    # are text, not nesting.
    value = ('{"s":"' + "[" * 500 + '","v":' + nested(MAX_JSON_DEPTH - 1, "{") + "}").encode()
    for path, headers, body, _ in bodies(claimed(harness), value, claimed(harness)):
        response = harness.request("POST", path, headers, body)
        assert response.status_code in (200, 202), (path, response.text[:200])
        assert "error" not in response.text, (path, response.text[:300])
    wide = json.dumps({"command": "wide", "payload": [[i] for i in range(5_000)]}).encode()
    assert harness.request("POST", "/v1/codeq/tasks", PRODUCER, wide).status_code == 202


def test_one_level_over_the_limit_is_refused_on_every_route(harness: Harness, task_id: str) -> None:
    value = ('{"v":' + nested(MAX_JSON_DEPTH, "{") + "}").encode()
    assert_refused(harness, task_id, value, f"nested deeper than {MAX_JSON_DEPTH} levels")
    body = json.dumps({"command": "deep", "payload": json.loads(value)}).encode()
    response = harness.request("POST", "/v1/codeq/tasks", PRODUCER, body)
    assert response.json() == {
        "error": f"invalid body: nested deeper than {MAX_JSON_DEPTH} levels",
        "field": "payload",
    }


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [("PUT", "/v1/codeq/admin/topics/t", PRODUCER), ("POST", "/v1/codeq/admin/backup", PRODUCER)],
)
def test_other_json_routes_refuse_deep_bodies(
    harness: Harness, method: str, path: str, headers: dict[str, str]
) -> None:
    response = harness.request(method, path, headers, ('{"priorityTiers":' + nested(50_000) + "}").encode())
    assert response.status_code == 400, response.text[:200]


def test_a_deep_subscription_heartbeat_is_read_as_empty(harness: Harness) -> None:
    body = ('{"x":' + nested(50_000) + "}").encode()
    response = harness.request("POST", "/v1/codeq/workers/subscriptions/none/heartbeat", WORKER, body)
    assert response.status_code == 404  # parsed leniently as `{}`, then the id is unknown
