"""Admin routes, health, readiness, metrics, auth failures and router errors."""

from __future__ import annotations

from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, WORKER, Api


async def test_queue_stats_count_the_callers_tenant(api: Api) -> None:
    await api.create(priority=3)
    await api.create(delaySeconds=60)
    await api.create()
    await api.claim()
    response = await api.get("/admin/queues/render")
    assert response.status_code == 200
    assert response.json() == {"command": "render", "ready": 1, "delayed": 1, "inProgress": 1, "dlq": 0}
    other = await api.get("/admin/queues/render", OTHER_PRODUCER)
    assert other.json() == {"command": "render", "ready": 0, "delayed": 0, "inProgress": 0, "dlq": 0}
    assert (await api.get("/admin/queues/%20")).json() == {"error": "command is required"}


async def test_queue_stats_validate_the_command_name(api: Api) -> None:
    for name in ("a%20b", "%00", "x" * 129, "%C3%A9t%C3%A9", "a;b"):
        response = await api.get(f"/admin/queues/{name}")
        assert response.status_code == 400, (name, response.text)
        assert response.json() == {"error": "invalid command", "field": "command"}
    assert (await api.get("/admin/queues/Render.v2:x")).status_code == 200


async def test_queue_listing_uses_reference_labels(api: Api) -> None:
    await api.create(priority=3)
    await api.create(priority=3)
    response = await api.get("/admin/queues")
    assert response.json() == {"codeq:q:render:dev:pending:3": 2}
    assert (await api.get("/admin/queues", OTHER_PRODUCER)).json() == {}


async def test_admin_routes_need_an_admin(api: Api) -> None:
    response = await api.get("/admin/queues", PLAIN_PRODUCER)
    assert response.status_code == 403 and response.json() == {"error": "unauthorized. Admin only"}
    assert (await api.get("/admin/queues", WORKER)).status_code == 401
    assert (await api.client.get("/v1/codeq/admin/queues")).status_code == 401


async def test_cleanup_deletes_expired_finished_tasks(api: Api) -> None:
    task_id = (await api.create())["id"]
    await api.claim()
    await api.post(f"/tasks/{task_id}/result", {"status": "COMPLETED", "result": {"a": 1}}, WORKER)
    response = await api.post("/admin/tasks/cleanup", {"limit": 10})
    assert response.json()["deleted"] == 0
    response = await api.post("/admin/tasks/cleanup", {"limit": 10, "before": "2100-01-01T00:00:00Z"})
    assert response.status_code == 200
    assert response.json() == {"before": "2100-01-01T00:00:00Z", "deleted": 1, "limit": 10}
    assert (await api.get(f"/tasks/{task_id}")).status_code == 404
    bad = await api.post("/admin/tasks/cleanup", {"before": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid 'before' (use RFC3339)"


async def test_health_and_readiness_need_no_token(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_expose_the_reference_names(api: Api) -> None:
    task_id = (await api.create())["id"]
    await api.claim()
    await api.post(f"/tasks/{task_id}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    text = (await api.client.get("/metrics")).text
    for name in (
        'codeq_task_created_total{command="render"} 1.0',
        'codeq_task_claimed_total{command="render"} 1.0',
        'codeq_task_completed_total{command="render",status="COMPLETED"} 1.0',
        "codeq_task_processing_latency_seconds_bucket",
        "codeq_commit_batch_size",
        "codeq_commit_latency_seconds",
    ):
        assert name in text, name


async def test_authentication_failures(api: Api) -> None:
    response = await api.client.post("/v1/codeq/tasks", content=b"{}")
    assert response.status_code == 401 and response.json() == {"error": "missing Authorization header"}
    response = await api.client.post("/v1/codeq/tasks", content=b"{}", headers={"Authorization": "Token x"})
    assert response.json() == {"error": "invalid Authorization format"}
    response = await api.client.post(
        "/v1/codeq/tasks", content=b"{}", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401 and response.json() == {"error": "invalid token"}


async def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    response = await api.client.get("/v1/codeq/nothing")
    assert response.status_code == 404 and response.json() == {"error": "not found"}
    response = await api.client.get("/v1/codeq/tasks")
    assert response.status_code == 405 and response.json() == {"error": "method not allowed"}


async def test_request_ids_are_echoed_or_generated(api: Api) -> None:
    response = await api.client.get("/healthz", headers={"X-Request-Id": "abc"})
    assert response.headers["x-request-id"] == "abc"
    generated = (await api.client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
