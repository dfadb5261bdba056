"""/openapi.json: it lists exactly the route table, and a live server keeps to it (schemathesis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from codeq.app import App
from codeq.core.clock import FakeClock
from codeq.transport.http import openapi
from codeq.transport.http.app import build_router
from codeq.transport.http.console import PAGE_ROUTES
from codeq.transport.http.render import TimeFormat
from tests.api.conftest import PRODUCER, WORKER, Api, make_settings, running
from tests.support.server import ServerProcess

DOCUMENT = openapi.document()
FULL = schemathesis.openapi.from_dict(DOCUMENT)
# Never fuzz the backup route: it writes wherever `dest` says, and it runs as this user.
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/v1/codeq/admin/backup")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def test_document_is_served_and_matches_the_route_table(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200 and response.json() == DOCUMENT
    router = build_router(api.app.services, times=TimeFormat(), max_body_bytes=1, metrics=None)
    routes = {(m, p) for m, p in router.routes() if p not in PAGE_ROUTES}
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    assert documented == routes


def test_every_operation_describes_its_errors() -> None:
    for path, ops in DOCUMENT["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            if op["security"]:
                assert "401" in op["responses"], (method, path)


async def test_every_success_answer_matches_the_document(api: Api) -> None:
    """One valid call per route through the app; each answer is validated against its schema."""
    checked: list[tuple[str, str, int]] = []

    async def call(method: str, template: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", PRODUCER)
        content = None if body is None else json.dumps(body).encode()
        response = await api.client.request(method, path, content=content, headers=headers, **kw)
        FULL[template][method].validate_response(response)
        checked.append((method, template, response.status_code))
        return response

    task, topic = "/v1/codeq/tasks/{id}", "/v1/codeq/admin/topics/{topicName}"
    created = await call("POST", "/v1/codeq/tasks", "/v1/codeq/tasks", {"command": "a", "payload": {}})
    await call(
        "POST",
        "/v1/codeq/tasks/batch",
        "/v1/codeq/tasks/batch",
        {"tasks": [{"command": "a", "payload": 1, "priority": 3}, {"command": " "}]},
    )
    claimed = (
        await call("POST", "/v1/codeq/tasks/claim", "/v1/codeq/tasks/claim", {}, headers=WORKER)
    ).json()
    one = f"/v1/codeq/tasks/{claimed['id']}"
    await call("POST", task + "/heartbeat", one + "/heartbeat", {}, headers=WORKER)
    await call("POST", task + "/nack", one + "/nack", {"delaySeconds": 0}, headers=WORKER)
    await api.create(command="a")
    batch = await call(
        "POST", "/v1/codeq/tasks/claim/batch", "/v1/codeq/tasks/claim/batch", {"count": 3}, headers=WORKER
    )
    ids = [t["id"] for t in batch.json()["tasks"]]
    await call("POST", task + "/abandon", f"/v1/codeq/tasks/{ids[0]}/abandon", headers=WORKER)
    await call(
        "POST",
        task + "/result",
        f"/v1/codeq/tasks/{ids[1]}/result",
        {"status": "COMPLETED", "result": {"ok": 1}},
        headers=WORKER,
    )
    await call(
        "POST",
        "/v1/codeq/tasks/batch/results",
        "/v1/codeq/tasks/batch/results",
        {"results": [{"taskId": ids[2], "status": "FAILED", "error": "x"}, {"taskId": "nope"}]},
        headers=WORKER,
    )
    await call("GET", task, f"/v1/codeq/tasks/{created.json()['id']}")
    await call("GET", task + "/result", f"/v1/codeq/tasks/{ids[1]}/result")
    await call("GET", "/v1/codeq/admin/queues", "/v1/codeq/admin/queues")
    await call("GET", "/v1/codeq/admin/queues/{command}", "/v1/codeq/admin/queues/a")
    await call("POST", "/v1/codeq/admin/tasks/cleanup", "/v1/codeq/admin/tasks/cleanup", {"limit": 5})
    listing = "/v1/codeq/admin/queues/{command}/tasks"
    await call("GET", listing, "/v1/codeq/admin/queues/a/tasks", params={"state": "completed", "limit": "2"})
    await call("GET", "/v1/codeq/admin/overview", "/v1/codeq/admin/overview")
    doomed = (await api.create(command="c"))["id"]
    await call("POST", task + "/cancel", f"/v1/codeq/tasks/{doomed}/cancel")
    policy = {"priorityTiers": [1, 0], "maxAttempts": 3, "deadLetterTopicRef": "dlq", "maxConsumers": 2}
    await call("PUT", topic, "/v1/codeq/admin/topics/orders", policy)
    await call("PUT", topic, "/v1/codeq/admin/topics/orders", policy)
    await call("GET", topic, "/v1/codeq/admin/topics/orders")
    await call("DELETE", topic, "/v1/codeq/admin/topics/orders", params={"deletionPolicy": "Delete"})
    schedule, schedules = "/v1/codeq/admin/schedules/{scheduleName}", "/v1/codeq/admin/schedules"
    spec = {"command": "report", "payload": {"n": 1}, "cron": "0 3 * * *", "timezone": "Europe/Paris"}
    await call("PUT", schedule, schedules + "/nightly", spec)
    await call("PUT", schedule, schedules + "/nightly", spec)
    await call("GET", schedule, schedules + "/nightly")
    await call("GET", schedules, schedules)
    await call("DELETE", schedule, schedules + "/nightly")
    for route in ("/metrics", "/healthz", "/readyz", "/openapi.json", "/v1/codeq/raft/status"):
        await call("GET", route, route)
    dead = (await api.create(command="d", maxAttempts=1))["id"]
    await api.claim(commands=["d"])
    await api.post(f"/tasks/{dead}/nack", {}, WORKER)
    dlq = "/v1/codeq/admin/dlq/{command}"
    await call("GET", dlq, "/v1/codeq/admin/dlq/d", params={"limit": "5"})
    await call("POST", dlq + "/requeue", "/v1/codeq/admin/dlq/d/requeue", {"taskIds": [dead]})
    await call("POST", dlq + "/purge", "/v1/codeq/admin/dlq/d/purge", {"all": True})
    subs = "/v1/codeq/workers/subscriptions"
    sub = {"callbackUrl": "https://hooks.example.com/ready", "eventTypes": ["a"], "ttlSeconds": 30}
    sub_id = (await call("POST", subs, subs, sub, headers=WORKER)).json()["subscriptionId"]
    renew = f"{subs}/{sub_id}/heartbeat"
    await call("POST", subs + "/{id}/heartbeat", renew, {"ttlSeconds": 60}, headers=WORKER)
    await call("GET", subs, subs, headers=WORKER)
    await call("GET", subs + "/{id}", f"{subs}/{sub_id}", headers=WORKER)
    await call("DELETE", subs + "/{id}", f"{subs}/{sub_id}", headers=WORKER)
    memory = await call("POST", "/v1/codeq/admin/backup", "/v1/codeq/admin/backup", {"dest": "/nowhere"})
    assert memory.status_code == 409  # a memory store has nothing to back up; see the next test
    transfer = "/v1/codeq/admin/raft/transfer-leader"
    single = await call("POST", transfer, transfer, {"to": "a"})
    assert single.status_code == 400  # no Raft here: tests/cluster/test_leader_lease.py covers it
    members = "/v1/codeq/admin/raft/members"
    no_raft = await call("POST", members, members, {"op": "remove", "id": "a"})
    assert no_raft.status_code == 400  # no Raft here: tests/cluster/test_membership.py covers it
    # Every other documented operation was driven to a success answer.
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    succeeded = {(m, p) for m, p, status in checked if status < 300}
    skipped = {("POST", "/v1/codeq/admin/backup"), ("POST", transfer), ("POST", members)}
    assert succeeded == documented - skipped, checked


async def test_backup_answer_matches_the_document(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    settings_ = make_settings(provider="embedded", data_path=data, backup_root=str(tmp_path))
    async with running(settings_) as node:
        dest = str(tmp_path / "backup")
        response = await node.client.post(
            "/v1/codeq/admin/backup", content=json.dumps({"dest": dest}).encode(), headers=PRODUCER
        )
        assert response.status_code == 200, response.text
        FULL["/v1/codeq/admin/backup"]["POST"].validate_response(response)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("openapi") / "data"
    # Long polls capped at 1 s, so a generated waitSeconds cannot hold an example for long.
    env = {"LIMITS_MAX_CLAIM_WAIT_SECONDS": "1", "LIMITS_MAX_RESULT_WAIT_SECONDS": "1"}
    process = ServerProcess(data, env=env)
    process.start()
    yield process
    process.stop()


def _headers(case: Any) -> dict[str, str]:
    worker = (
        case.path.startswith("/v1/codeq/tasks/")
        and case.method == "POST"
        and case.path != "/v1/codeq/tasks/batch"
    )
    return dict(WORKER if worker else PRODUCER)


@pytest.mark.process
@SCHEMA.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_live_server_keeps_to_the_document(case: Any, server: ServerProcess) -> None:
    case.headers = {**(case.headers or {}), **_headers(case)}  # a generated bearer would be refused
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=10)


class InProcess:
    """A fresh in-process node (memory store, fake clock) per stateful example, so each
    example starts from the same empty state and hypothesis sees a deterministic machine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Long polls capped at 1 s: an example never waits long for a task that will not come.
        settings_ = make_settings(**{"limits.max_claim_wait_seconds": 1, "limits.max_result_wait_seconds": 1})
        self.app = App(settings_, clock=FakeClock())
        self.loop.run_until_complete(self.app.start())
        transport = httpx.ASGITransport(app=self.app.asgi)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://codeq.test")

    def send(self, case: Any) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url="http://codeq.test")
        kwargs.pop("cookies", None)
        kwargs["headers"].update(_headers(case))  # the generated bearer would be refused
        kwargs["headers"].pop("X-Worker-Id", None)  # a random instance owns nothing it claimed
        if "data" in kwargs:
            kwargs["content"] = kwargs.pop("data")
        return self.loop.run_until_complete(self.client.request(**kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.app.stop())
        self.loop.close()


def test_stateful_links_keep_to_the_document() -> None:
    """Follow the links (create -> read and claim; claim -> heartbeat/nack/abandon/result;
    topic put -> get/delete), so the success answers of the id routes are checked too."""

    class Machine(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.node = InProcess()

        def teardown(self) -> None:
            self.node.close()

        def call(self, case: Any, **kwargs: Any) -> Any:
            return Response.from_httpx(self.node.send(case), verify=False)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Machine.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=8,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    Machine.TestCase().runTest()
