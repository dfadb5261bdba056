"""`/metrics` through the running node: bounded series, a cached page, its own listener,
request metrics and the access log (issue 11 item 5, issue 13 item 5)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from codeq.observability.series import OTHER
from tests.api.conftest import PRODUCER, WORKER, Api, make_settings, running

COMMANDS = 1100  # beyond the default cap of 1000 series per metric


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


async def create_many_commands(api: Api, count: int) -> None:
    for start in range(0, count, 100):
        tasks = [{"command": f"cmd{i:05d}", "payload": {}} for i in range(start, min(start + 100, count))]
        response = await api.post("/tasks/batch", {"tasks": tasks})
        assert response.status_code == 200, response.text


async def test_client_chosen_command_names_cannot_grow_the_page_without_bound() -> None:
    async with running(make_settings()) as api:
        await create_many_commands(api, COMMANDS)
        text = (await api.client.get("/metrics")).text
    created = series(text, "codeq_task_created_total")
    assert len(created) == 1001  # 1000 by name, the rest folded into one
    assert f'codeq_task_created_total{{command="{OTHER}"}} 100.0' in created
    assert sum(float(line.rsplit(" ", 1)[1]) for line in created) == COMMANDS
    depth = series(text, "codeq_queue_depth")
    assert len(depth) <= 1000
    assert sum(float(line.rsplit(" ", 1)[1]) for line in depth) == COMMANDS


async def test_tenant_names_stay_out_of_labels_unless_enabled() -> None:
    async with running(make_settings()) as api:
        await api.create("render")
        hidden = (await api.client.get("/metrics")).text
    assert 'codeq_queue_depth{command="render",queue="ready",tenant=""} 1.0' in hidden
    assert 'tenant="dev"' not in hidden
    async with running(make_settings(metrics_tenant_labels=True)) as api:
        await api.create("render")
        shown = (await api.client.get("/metrics")).text
    assert 'codeq_queue_depth{command="render",queue="ready",tenant="dev"} 1.0' in shown


async def test_the_page_is_reused_for_a_second() -> None:
    async with running(make_settings()) as api:
        first = (await api.client.get("/metrics")).text
        await api.create("render")
        assert (await api.client.get("/metrics")).text == first
        api.clock.advance(1)
        assert 'codeq_task_created_total{command="render"} 1.0' in (await api.client.get("/metrics")).text


async def fetch(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_metrics_addr_serves_the_page_on_its_own_listener_only() -> None:
    async with running(make_settings(metrics_addr="127.0.0.1:0")) as api:
        await api.create("render")
        assert (await api.client.get("/metrics")).status_code == 404  # no longer on the API port
        listener = api.app.metrics_listener
        assert listener is not None
        page = await fetch(listener.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert page.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'codeq_task_created_total{command="render"} 1.0' in page
        assert (await fetch(listener.port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await fetch(listener.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        # A head beyond the limit is not answered at all.
        assert (
            await fetch(listener.port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n") == b""
        )


async def test_request_metrics_are_labelled_by_route_template_and_status(api: Api) -> None:
    task_id = (await api.create())["id"]
    await api.get(f"/tasks/{task_id}")
    await api.get("/tasks/00000000-0000-4000-8000-000000000000")
    await api.client.get("/nowhere")
    api.clock.advance(1)
    text = (await api.client.get("/metrics")).text
    for line in (
        'codeq_http_requests_total{method="POST",route="/v1/codeq/tasks",status="202"} 1.0',
        'codeq_http_requests_total{method="GET",route="/v1/codeq/tasks/{id}",status="200"} 1.0',
        'codeq_http_requests_total{method="GET",route="/v1/codeq/tasks/{id}",status="404"} 1.0',
        'codeq_http_requests_total{method="GET",route="unmatched",status="404"} 1.0',
        'codeq_http_request_duration_seconds_count{method="POST",route="/v1/codeq/tasks",status="202"} 1.0',
    ):
        assert line in text, line
    assert task_id not in text


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("codeq.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_the_access_log_is_off_by_default(access_lines: Lines) -> None:
    async with running(make_settings()) as api:
        await api.create()
    assert access_lines.records == []


async def test_the_access_log_writes_one_line_per_request(access_lines: Lines) -> None:
    from codeq.observability.logging import JsonFormatter

    async with running(make_settings(access_log=True)) as api:
        task_id = (await api.create())["id"]
        await api.post(f"/tasks/{task_id}/heartbeat", {}, WORKER)
        await api.client.get("/healthz", headers={"X-Request-Id": "req-1"})
    create, heartbeat, health = (json.loads(JsonFormatter().format(r)) for r in access_lines.records)
    assert create["msg"] == "request" and create["logger"] == "codeq.access"
    assert create["route"] == "/v1/codeq/tasks" and create["status"] == 202 and create["tenant"] == "dev"
    assert create["method"] == "POST" and create["latency_ms"] >= 0 and len(create["request_id"]) == 32
    assert heartbeat["route"] == "/v1/codeq/tasks/{id}/heartbeat" and heartbeat["status"] == 409
    assert health == {**health, "route": "/healthz", "status": 200, "tenant": "", "request_id": "req-1"}
    assert PRODUCER["Authorization"].split()[1] not in json.dumps([create, heartbeat, health])
