"""Topic administration (routes 18-20, spec 02 §4.15 and 01 §10.2) through HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, PRODUCER, WORKER, Api

POLICY = {"priorityTiers": [5, 0, 9], "maxAttempts": 10, "deadLetterTopicRef": "orders-dlq"}
PATH = "/v1/codeq/admin/topics"


async def put(api: Api, name: str, body: Any, headers: dict[str, str] = PRODUCER) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await api.client.put(f"{PATH}/{name}", content=content, headers=headers)


async def get(api: Api, name: str, headers: dict[str, str] = PRODUCER) -> httpx.Response:
    return await api.client.get(f"{PATH}/{name}", headers=headers)


async def delete(api: Api, name: str, query: str = "?deletionPolicy=Delete", **kw: Any) -> httpx.Response:
    return await api.client.delete(f"{PATH}/{name}{query}", headers=kw.get("headers", PRODUCER))


async def test_upsert_versions(api: Api) -> None:
    created = await put(api, "orders", POLICY)
    assert created.status_code == 201
    topic = created.json()
    assert list(topic) == ["topicId", "tenantId", "topicName", "policy", "version", "createdAt", "updatedAt"]
    assert topic["topicId"] == "dev.orders" and topic["tenantId"] == "dev" and topic["topicName"] == "orders"
    assert topic["policy"] == {
        "priorityTiers": [0, 5, 9],
        "maxAttempts": 10,
        "deadLetterTopicRef": "orders-dlq",
    }
    assert topic["version"] == 1 and topic["createdAt"] == topic["updatedAt"]
    assert topic["createdAt"].endswith("Z")

    api.clock.advance(5)
    same = await put(api, "orders", {**POLICY, "priorityTiers": [9, 5, 0]})  # same once sorted
    assert same.status_code == 200 and same.json() == topic

    api.clock.advance(5)
    changed = await put(api, "orders", {**POLICY, "maxAttempts": 11, "retentionSeconds": 60})
    assert changed.status_code == 200
    body = changed.json()
    assert body["version"] == 2 and body["createdAt"] == topic["createdAt"]
    assert body["updatedAt"] != topic["updatedAt"]
    assert body["policy"]["retentionSeconds"] == 60 and "maxConsumers" not in body["policy"]
    assert (await get(api, "orders")).json() == body


async def test_get_and_delete(api: Api) -> None:
    missing = await get(api, "orders")
    assert missing.status_code == 404 and missing.json() == {"error": 'queue topic "dev.orders" not found'}
    await put(api, "orders", POLICY)
    assert (await get(api, "orders")).status_code == 200
    no_policy = await delete(api, "orders", query="")
    assert no_policy.status_code == 400 and no_policy.json()["error"] == "deletionPolicy=Delete is required"
    lower = await delete(api, "orders", query="?deletionPolicy=delete")
    assert lower.status_code == 400
    gone = await delete(api, "orders")
    assert gone.status_code == 204 and gone.content == b""
    assert (await delete(api, "orders")).status_code == 204  # idempotent
    assert (await get(api, "orders")).status_code == 404
    recreated = await put(api, "orders", POLICY)
    assert recreated.status_code == 201 and recreated.json()["version"] == 1


async def test_validation_is_422_with_field(api: Api) -> None:
    cases = [
        ({"priorityTiers": [1, 1]}, "priorityTiers", "invalid priorityTiers: priorities must be unique"),
        (
            {"priorityTiers": []},
            "priorityTiers",
            "invalid priorityTiers: must contain between 1 and 10 priorities",
        ),
        (
            {"priorityTiers": [10]},  # codeQ allows tier 10, which no task can have
            "priorityTiers",
            "invalid priorityTiers: priorities must be integers from 0 through 9",
        ),
        ({"maxAttempts": 0}, "maxAttempts", "invalid maxAttempts: must be between 1 and 1000"),
        ({"maxAttempts": 1001}, "maxAttempts", "invalid maxAttempts: must be between 1 and 1000"),
        (
            {"deadLetterTopicRef": "Bad_Ref"},
            "deadLetterTopicRef",
            "invalid deadLetterTopicRef: must be a DNS label with at most 63 characters",
        ),
        (
            {"deadLetterTopicRef": "orders"},
            "deadLetterTopicRef",
            "invalid deadLetterTopicRef: must differ from topicName",
        ),
        (
            {"retentionSeconds": -1},
            "retentionSeconds",
            "invalid retentionSeconds: must be between 0 and 2147483647",
        ),
        ({"maxConsumers": 10001}, "maxConsumers", "invalid maxConsumers: must be between 0 and 10000"),
    ]
    for change, field, message in cases:
        response = await put(api, "orders", {**POLICY, **change})
        assert response.status_code == 422, (change, response.text)
        assert response.json() == {"error": message, "field": field}
    bad_name = await put(api, "Orders!", POLICY)
    assert bad_name.status_code == 422 and bad_name.json()["field"] == "topicName"
    assert (await get(api, "-x")).status_code == 422
    assert (await delete(api, "x" * 64)).status_code == 422
    assert (await get(api, "orders")).status_code == 404  # nothing was written


async def test_a_topic_accepts_exactly_the_ranges_a_task_accepts(api: Api) -> None:
    """One set of ranges: every priority and attempt count a task may carry, and no other."""
    widest = {**POLICY, "priorityTiers": list(range(10)), "maxAttempts": 1000}  # limits.maxAttempts
    assert (await put(api, "orders", widest)).status_code in (200, 201)
    task = await api.post("/tasks", {"command": "c", "payload": {}, "priority": 9, "maxAttempts": 1000})
    assert task.status_code == 202
    for policy in ({**POLICY, "priorityTiers": [10]}, {**POLICY, "maxAttempts": 1001}):
        assert (await put(api, "orders", policy)).status_code == 422
        tier, attempts = max(policy["priorityTiers"]), policy["maxAttempts"]
        refused = await api.post(
            "/tasks", {"command": "c", "payload": {}, "priority": tier, "maxAttempts": attempts}
        )
        assert refused.status_code == 400  # what the topic refuses, a task cannot carry either


async def test_strict_body(api: Api) -> None:
    cases = [
        (b"", "invalid request body: EOF"),
        (json.dumps({**POLICY, "extra": 1}).encode(), 'invalid request body: json: unknown field "extra"'),
        (json.dumps(POLICY).encode() + b" {}", "invalid request body: only one JSON object is allowed"),
        (b"{not json", None),
        (json.dumps({**POLICY, "maxAttempts": "10"}).encode(), None),
        (json.dumps({**POLICY, "maxattempts": 10}).encode(), None),  # names are exact
        (json.dumps({"maxAttempts": 1, "deadLetterTopicRef": "d"}).encode(), None),
    ]
    for body, message in cases:
        response = await put(api, "orders", body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error.startswith("invalid request body: ")
        if message is not None:
            assert error == message


async def test_topics_are_per_tenant_and_admin_only(api: Api) -> None:
    await put(api, "orders", POLICY)
    assert (await get(api, "orders", OTHER_PRODUCER)).status_code == 404  # B sees no A topic
    theirs = await put(api, "orders", {**POLICY, "maxAttempts": 3}, OTHER_PRODUCER)
    assert theirs.status_code == 201 and theirs.json()["topicId"] == "globex.orders"
    await delete(api, "orders", headers=OTHER_PRODUCER)
    assert (await get(api, "orders")).json()["policy"]["maxAttempts"] == 10  # A's is untouched
    for headers in (PLAIN_PRODUCER, WORKER):
        assert (await put(api, "orders", POLICY, headers)).status_code in (401, 403)
        assert (await get(api, "orders", headers)).status_code in (401, 403)
        assert (await delete(api, "orders", headers=headers)).status_code in (401, 403)
    assert (await api.client.put(f"{PATH}/orders", content=b"{}")).status_code == 401
