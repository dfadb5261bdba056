"""Clients written for codeQ keep working: the idempotency header, codeQ's error texts."""

from __future__ import annotations

from tests.api.conftest import OTHER_WORKER, PRODUCER, WORKER, Api

BODY = {"command": "render", "payload": {"n": 1}}


async def test_the_idempotency_key_header_dedupes_creates_like_the_body_field(api: Api) -> None:
    keyed = {**PRODUCER, "Idempotency-Key": "job-7"}
    first = await api.post("/tasks", BODY, keyed)
    second = await api.post("/tasks", BODY, keyed)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.headers["idempotent-replay"] == "true"
    assert second.json()["id"] == first.json()["id"]
    by_body = await api.post("/tasks", {**BODY, "idempotencyKey": "job-7"})
    assert by_body.json()["id"] == first.json()["id"]  # one key, whichever way it came


async def test_the_idempotency_key_header_and_body_must_agree(api: Api) -> None:
    keyed = {**PRODUCER, "Idempotency-Key": "job-8"}
    same = await api.post("/tasks", {**BODY, "idempotencyKey": "job-8"}, keyed)
    assert same.status_code == 202
    differ = await api.post("/tasks", {**BODY, "idempotencyKey": "job-9"}, keyed)
    assert differ.status_code == 400
    assert differ.json()["field"] == "idempotencyKey"


async def test_a_result_for_an_unknown_task_says_task_not_found(api: Api) -> None:
    response = await api.post("/tasks/nope/result", {"status": "COMPLETED", "result": {}}, WORKER)
    assert response.status_code == 404
    assert response.json()["error"] == "task not found"
    batch = await api.post(
        "/tasks/batch/results", {"results": [{"taskId": "nope", "status": "COMPLETED", "result": {}}]}, WORKER
    )
    assert batch.json()["results"] == [{"taskId": "nope", "error": "task not found"}]


async def test_other_worker_routes_keep_codeqs_not_found_text(api: Api) -> None:
    assert (await api.post("/tasks/nope/heartbeat", {}, WORKER)).json()["error"] == "not-found"
    assert (await api.post("/tasks/nope/nack", {}, WORKER)).json()["error"] == "not-found"


SUBS = "/workers/subscriptions"
HOOK = {"callbackUrl": "https://hooks.example.com/ready", "eventTypes": ["render"], "ttlSeconds": 30}


async def test_a_worker_finds_its_subscriptions_again(api: Api) -> None:
    made = [(await api.post(SUBS, HOOK, WORKER)).json()["subscriptionId"] for _ in range(2)]
    await api.post(SUBS, HOOK, OTHER_WORKER)  # another tenant's: never listed
    listed = await api.get(SUBS, WORKER)
    assert listed.status_code == 200
    subs = listed.json()["subscriptions"]
    assert [s["subscriptionId"] for s in subs] == sorted(made)
    one = (await api.get(f"{SUBS}/{made[0]}", WORKER)).json()
    assert one["callbackUrl"] == HOOK["callbackUrl"]
    assert one["eventTypes"] == ["render"]
    assert one["deliveryMode"] == "fanout"
    assert one in subs
    assert (await api.get(f"{SUBS}/{made[0]}", OTHER_WORKER)).status_code == 404
    api.clock.advance(31)
    assert (await api.get(SUBS, WORKER)).json() == {"subscriptions": []}  # expired: gone at once
    assert (await api.get(f"{SUBS}/{made[0]}", WORKER)).status_code == 404


async def test_the_openapi_document_names_the_header_and_the_subscription_reads(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    create = doc["paths"]["/v1/codeq/tasks"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"] if p["in"] == "header"]
    assert "get" in doc["paths"]["/v1/codeq/workers/subscriptions"]
    assert "get" in doc["paths"]["/v1/codeq/workers/subscriptions/{id}"]
