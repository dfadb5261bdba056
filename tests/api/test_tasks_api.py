"""Routes 1–9 and 12–13 through HTTP: shapes, status codes and every documented 4xx."""

from __future__ import annotations

import asyncio

from tests.api.conftest import (
    NARROW_WORKER,
    OTHER_PRODUCER,
    OTHER_WORKER,
    PRODUCER,
    WORKER,
    Api,
    make_settings,
    running,
)


async def test_create_returns_202_with_the_reference_task_shape(api: Api) -> None:
    response = await api.post("/tasks", {"command": "render", "payload": {"b": 1, "a": "<x>"}, "priority": 9})
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/json")
    task = response.json()
    assert list(task) == [
        "id",
        "command",
        "payload",
        "priority",
        "status",
        "lastKnownLocation",
        "maxAttempts",
        "tenantId",
        "createdAt",
        "updatedAt",
    ]
    assert task["payload"] == '{"b": 1, "a": "<x>"}'  # stored as sent (spec 01 gap 13)
    assert task["status"] == "PENDING" and task["lastKnownLocation"] == "PENDING_LIST"
    assert task["tenantId"] == "dev" and task["maxAttempts"] == 5
    assert task["createdAt"].endswith("Z")
    assert "attempts" not in task  # zero values are omitted, as in the reference


async def test_any_json_payload_is_accepted_but_null_and_missing_are_not(api: Api) -> None:
    for payload in (0, False, "", {}, [], "text", 1.5):
        assert (await api.post("/tasks", {"command": "render", "payload": payload})).status_code == 202
    null = await api.post("/tasks", {"command": "render", "payload": None})
    assert (null.status_code, null.json()) == (400, {"error": "invalid body", "field": "payload"})
    for body, field in (({"command": "render"}, "payload"), ({"payload": 1}, "command")):
        response = await api.post("/tasks", body)
        assert response.status_code == 400
        assert response.json() == {"error": f"invalid body: {field} is required", "field": field}


async def test_unknown_fields_in_request_bodies_are_refused_by_name(api: Api) -> None:
    typo = await api.post("/tasks", {"command": "render", "payload": 1, "priorty": 5})
    assert (typo.status_code, typo.json()) == (
        400,
        {"error": 'invalid body: unknown field "priorty"', "field": "priorty"},
    )
    created = (await api.post("/tasks", {"command": "render", "payload": 1})).json()
    claim = await api.post("/tasks/claim", {"commands": ["render"], "leaseSecs": 30}, WORKER)
    assert claim.status_code == 400 and claim.json()["field"] == "leaseSecs"
    # codeQ's Go SDK sends its claim options (waitSeconds too) to the batch claim: still accepted.
    batch = await api.post(
        "/tasks/claim/batch", {"count": 1, "commands": ["render"], "waitSeconds": 1}, WORKER
    )
    assert batch.status_code == 200 and batch.json()["tasks"][0]["id"] == created["id"]


async def test_create_validation_errors(api: Api) -> None:
    cases = {
        "invalid command": {"command": "  ", "payload": 1},
        "invalid 'runAt' (use RFC3339)": {"command": "r", "payload": 1, "runAt": "tomorrow"},
        "invalid 'delaySeconds' (must be >= 0)": {"command": "r", "payload": 1, "delaySeconds": -1},
        "invalid webhook url": {"command": "r", "payload": 1, "webhook": "ftp://x"},
        "invalid 'priority' (must be 0..9)": {"command": "r", "payload": 1, "priority": 12},
        "invalid body": {"command": "r", "payload": 1, "priority": 1.5},
    }
    for message, body in cases.items():
        response = await api.post("/tasks", body)
        assert response.status_code == 400, body
        assert response.json()["error"] == message
    assert (await api.post("/tasks", content=b"{not json")).status_code == 400
    assert (await api.post("/tasks", {"command": "r", "payload": 1, "maxAttempts": 10**6})).status_code == 400
    assert (
        await api.post("/tasks", {"command": "r", "payload": 1, "delaySeconds": 10**9})
    ).status_code == 400


async def test_bodies_over_the_limit_get_413(api: Api) -> None:
    big = b'{"command":"r","payload":"' + b"x" * (1 << 20) + b'"}'
    response = await api.post("/tasks", content=big)
    assert response.status_code == 413 and "exceeds" in response.json()["error"]


async def test_payload_over_its_limit_gets_413(api: Api) -> None:
    body = {"command": "r", "payload": "x" * (600 * 1024)}
    assert (await api.post("/tasks", body)).status_code == 413


async def test_idempotent_replay_answers_200_with_the_same_task(api: Api) -> None:
    first = await api.post("/tasks", {"command": "render", "payload": 1, "idempotencyKey": "job-1"})
    again = await api.post("/tasks", {"command": "render", "payload": 2, "idempotencyKey": "job-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["idempotent-replay"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.post(
        "/tasks", {"command": "render", "payload": 1, "idempotencyKey": "job-1"}, OTHER_PRODUCER
    )
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]


async def test_batch_create_reports_each_item(api: Api) -> None:
    body = {
        "tasks": [
            {"command": "render", "payload": {}},
            {"command": " ", "payload": 1},
            {"command": "render", "payload": {}, "runAt": "tomorrow"},
        ]
    }
    response = await api.post("/tasks/batch", body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["task"]["status"] == "PENDING"
    assert results[1] == {"error": "invalid command"}
    assert results[2] == {"error": "invalid 'runAt' (use RFC3339)"}


async def test_batch_create_limits(api: Api) -> None:
    assert (await api.post("/tasks/batch", {"tasks": []})).json()["error"] == "invalid body"
    too_many = {"tasks": [{"command": "r", "payload": 1}] * 101}
    response = await api.post("/tasks/batch", too_many)
    assert response.status_code == 400 and response.json()["error"] == "batch size exceeds maximum of 100"


async def test_claim_then_result_then_get_result(api: Api) -> None:
    created = await api.create()
    claim = await api.claim(commands=["render"], leaseSeconds=60)
    assert claim.status_code == 200
    task = claim.json()
    assert task["id"] == created["id"] and task["status"] == "IN_PROGRESS"
    assert task["attempts"] == 1 and task["workerId"] == "dev-worker" and task["leaseUntil"].endswith("Z")
    result = await api.post(
        f"/tasks/{task['id']}/result", {"status": "COMPLETED", "result": {"url": "s3://x"}}, WORKER
    )
    assert result.status_code == 200
    assert list(result.json()) == ["taskId", "status", "result", "completedAt"]
    assert result.json()["result"] == {"url": "s3://x"}
    again = await api.post(f"/tasks/{task['id']}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    assert again.status_code == 409 and again.json()["error"] == "not-in-progress"
    read = await api.get(f"/tasks/{task['id']}/result")
    assert read.status_code == 200
    body = read.json()
    assert body["task"]["status"] == "COMPLETED" and body["task"]["resultKey"] == "codeq:results"
    assert body["task"]["lastKnownLocation"] == "NONE" and body["result"]["result"] == {"url": "s3://x"}


async def test_claim_with_nothing_ready_is_204(api: Api) -> None:
    response = await api.claim()
    assert response.status_code == 204 and response.content == b""


async def test_empty_claim_body_means_defaults(api: Api) -> None:
    await api.create()
    response = await api.post("/tasks/claim", headers=WORKER, content=b"")
    assert response.status_code == 200


async def test_long_poll_claim_is_answered_when_a_task_arrives(api: Api) -> None:
    waiting = asyncio.ensure_future(api.claim(commands=["render"], waitSeconds=30))
    await asyncio.sleep(0)
    assert not waiting.done()
    created = await api.create()
    response = await asyncio.wait_for(waiting, 5)
    assert response.status_code == 200 and response.json()["id"] == created["id"]


async def test_long_poll_claim_times_out_with_204(api: Api) -> None:
    response = await api.claim(waitSeconds=1)
    assert response.status_code == 204


async def test_long_poll_result_is_answered_when_the_task_finishes(api: Api) -> None:
    created = await api.create()
    waiting = asyncio.ensure_future(api.get(f"/tasks/{created['id']}/result?waitSeconds=30"))
    await api.claim()
    await api.post(f"/tasks/{created['id']}/result", {"status": "FAILED", "error": "boom"}, WORKER)
    response = await asyncio.wait_for(waiting, 5)
    assert response.status_code == 200 and response.json()["result"]["error"] == "boom"


async def test_get_result_errors(api: Api) -> None:
    assert (await api.get("/tasks/nope/result")).json() == {"error": "task not found"}
    created = await api.create()
    response = await api.get(f"/tasks/{created['id']}/result?waitSeconds=bogus")
    assert response.status_code == 404 and response.json() == {"error": "result not found"}


async def test_claim_permissions(api: Api) -> None:
    await api.create("billing")
    assert (await api.claim(NARROW_WORKER, commands=["billing"])).status_code == 403
    assert (await api.claim(NARROW_WORKER, commands=["billing"])).json()["error"] == "event type not allowed"
    assert (await api.claim(NARROW_WORKER)).status_code == 204  # defaults to its own eventTypes
    assert (await api.claim(PRODUCER)).status_code == 401


async def test_batch_claim(api: Api) -> None:
    for _ in range(3):
        await api.create()
    response = await api.post("/tasks/claim/batch", {"count": 2, "commands": ["render"]}, WORKER)
    assert response.status_code == 200 and len(response.json()["tasks"]) == 2
    assert (await api.post("/tasks/claim/batch", {"count": 11}, WORKER)).json()[
        "error"
    ] == "count exceeds maximum of 10"
    assert (await api.post("/tasks/claim/batch", {"count": 0}, WORKER)).status_code == 400
    assert (await api.post("/tasks/claim/batch", {}, WORKER)).status_code == 400
    response = await api.post("/tasks/claim/batch", {"count": 5}, WORKER)
    assert response.status_code == 200 and len(response.json()["tasks"]) == 1
    assert (await api.post("/tasks/claim/batch", {"count": 5}, WORKER)).status_code == 204


async def test_heartbeat_abandon_nack(api: Api) -> None:
    created = await api.create()
    task_id = (await api.claim()).json()["id"]
    response = await api.post(f"/tasks/{task_id}/heartbeat", {"extendSeconds": 120}, WORKER)
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert (await api.post(f"/tasks/{task_id}/abandon", None, WORKER)).json() == {"status": "requeued"}
    assert (await api.post(f"/tasks/{task_id}/heartbeat", {}, WORKER)).status_code == 409
    await api.claim()
    response = await api.post(f"/tasks/{task_id}/nack", {"delaySeconds": 0}, WORKER)
    assert response.json() == {"delaySeconds": 0, "status": "requeued"}
    await api.claim()
    response = await api.post(f"/tasks/{task_id}/nack", {}, WORKER)
    assert response.json() == {"delaySeconds": 5, "status": "requeued"}
    assert created["id"] == task_id


async def test_nack_until_the_dead_letter_queue(api: Api) -> None:
    task_id = (await api.create(maxAttempts=2))["id"]
    for expected in ("requeued", "dlq"):
        assert (await api.claim()).status_code == 200
        response = await api.post(f"/tasks/{task_id}/nack", {"delaySeconds": 0, "reason": "bad"}, WORKER)
        assert response.json()["status"] == expected
    task = (await api.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "FAILED" and task["lastKnownLocation"] == "DLQ_SET" and task["error"] == "bad"
    result = (await api.get(f"/tasks/{task_id}/result")).json()["result"]
    assert result["status"] == "FAILED" and result["error"] == "bad"


async def test_an_explicit_nack_delay_is_capped_at_backoff_max_seconds() -> None:
    async with running(make_settings(backoff_max_seconds=60)) as api:
        task_id = (await api.create())["id"]
        assert (await api.claim()).status_code == 200
        response = await api.post(f"/tasks/{task_id}/nack", {"delaySeconds": 86_400}, WORKER)
        assert response.json() == {"delaySeconds": 60, "status": "requeued"}
        api.clock.advance(59)
        assert (await api.claim()).status_code == 204
        api.clock.advance(1)
        assert (await api.claim()).json()["id"] == task_id


async def test_lease_errors_map_to_404_403_409(api: Api) -> None:
    assert (await api.post("/tasks/nope/heartbeat", {}, WORKER)).status_code == 404
    assert (await api.post("/tasks/nope/abandon", None, WORKER)).status_code == 404
    assert (await api.post("/tasks/nope/nack", {}, WORKER)).json() == {"error": "not-found"}
    created = await api.create()
    assert (await api.post(f"/tasks/{created['id']}/nack", {}, WORKER)).status_code == 409
    assert (await api.post(f"/tasks/{created['id']}/nack", {"delaySeconds": -1}, WORKER)).status_code == 400
    await api.claim()
    other_tenant = await api.post(f"/tasks/{created['id']}/heartbeat", {}, OTHER_WORKER)
    assert other_tenant.status_code == 404  # not 403: another tenant's ids do not exist (spec 02 gap 2)


async def test_result_validation(api: Api) -> None:
    task_id = (await api.create())["id"]
    await api.claim()
    path = f"/tasks/{task_id}/result"
    cases = [
        ({"status": "COMPLETED"}, "result required when status=COMPLETED"),
        ({"status": "FAILED"}, "error required when status=FAILED"),
        ({"status": "DONE", "result": {}}, "invalid status"),
        ({"result": {}}, "invalid request body: status is required"),
        ({"status": "COMPLETED", "result": [1]}, "invalid request body"),
        ({"status": "COMPLETED", "result": {}, "artifacts": [{"name": "../x", "url": "http://a"}]}, None),
        (
            {"status": "COMPLETED", "result": {}, "artifacts": [{"name": "a.bin", "contentBase64": "AA=="}]},
            None,
        ),
    ]
    for body, message in cases:
        response = await api.post(path, body, WORKER)
        assert response.status_code == 400, body
        if message:
            assert response.json()["error"] == message
    response = await api.post(
        path,
        {"status": "COMPLETED", "result": {}, "artifacts": [{"name": "out.png", "url": "s3://b/out.png"}]},
        WORKER,
    )
    assert response.status_code == 200
    assert response.json()["artifacts"] == [{"name": "out.png", "url": "s3://b/out.png"}]
    assert "result" not in response.json()  # {} is stored and echoed without a result key


async def test_batch_results(api: Api) -> None:
    ids = [(await api.create())["id"] for _ in range(2)]
    await api.post("/tasks/claim/batch", {"count": 2}, WORKER)
    body = {
        "results": [
            {"taskId": ids[0], "status": "COMPLETED", "result": {"ok": True}},
            {"taskId": ids[0], "status": "COMPLETED", "result": {"ok": True}},
            {"taskId": ids[1], "status": "FAILED"},
            {"taskId": "nope", "status": "COMPLETED", "result": {}},
        ]
    }
    response = await api.post("/tasks/batch/results", body, WORKER)
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["result"]["status"] == "COMPLETED"
    assert results[1] == {"taskId": ids[0], "error": "not-in-progress"}
    assert results[2] == {"taskId": ids[1], "error": "error required when status=FAILED"}
    assert results[3] == {"taskId": "nope", "error": "task not found"}  # codeQ's text (spec 02 §4.10)


async def test_get_task_is_tenant_scoped(api: Api) -> None:
    created = await api.create()
    assert (await api.get(f"/tasks/{created['id']}")).json()["id"] == created["id"]
    assert (await api.get(f"/tasks/{created['id']}", WORKER)).status_code == 200
    hidden = await api.get(f"/tasks/{created['id']}", OTHER_PRODUCER)
    assert hidden.status_code == 404 and hidden.json() == {"error": "not found"}
    assert (await api.get(f"/tasks/{created['id']}/result", OTHER_WORKER)).json() == {
        "error": "task not found"
    }


async def test_delayed_task_wakes_a_waiting_claim_when_due(api: Api) -> None:
    created = await api.create(delaySeconds=2)
    assert created["lastKnownLocation"] == "DELAYED_ZSET"
    assert (await api.claim()).status_code == 204
    waiting = asyncio.ensure_future(api.claim(waitSeconds=30))
    await asyncio.sleep(0)
    api.clock.advance(2)
    api.app.runner.poke()
    response = await asyncio.wait_for(waiting, 5)
    assert response.status_code == 200 and response.json()["id"] == created["id"]


async def test_a_webhook_on_an_ipv6_address_carrying_a_private_ipv4_is_refused(api: Api) -> None:
    """NAT64 of the metadata endpoint, 6to4 and IPv4-compatible forms of private addresses."""
    for url in ("http://[64:ff9b::a9fe:a9fe]/latest", "http://[2002:a00:1::]/x", "http://[::10.1.2.3]/"):
        response = await api.post("/tasks", {"command": "render", "payload": {}, "webhook": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["field"] == "webhook"
    public = await api.post(
        "/tasks", {"command": "render", "payload": {}, "webhook": "http://[64:ff9b::808:808]/"}
    )
    assert public.status_code == 202
