"""Rate limits through the HTTP routes: a bucket driven empty gives the reference's 429."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.conftest import OTHER_PRODUCER, PRODUCER, WORKER, Api, make_settings, running

LIMITS = {
    "rate_limit.producer_requests_per_minute": 60,
    "rate_limit.producer_burst_size": 2,
    "rate_limit.worker_requests_per_minute": 6,
    "rate_limit.worker_burst_size": 1,
    "rate_limit.admin_requests_per_minute": 1,
    "rate_limit.admin_burst_size": 1,
}


@pytest.fixture
async def limited() -> AsyncIterator[Api]:
    async with running(make_settings(**LIMITS)) as node:
        yield node


async def create(api: Api, headers: dict[str, str] = PRODUCER) -> httpx.Response:
    return await api.post("/tasks", {"command": "render", "payload": {}}, headers)


async def test_producer_bucket(limited: Api) -> None:
    assert (await create(limited)).status_code == 202
    batch = await limited.post("/tasks/batch", {"tasks": [{"command": "a", "payload": {}}] * 3})
    assert batch.status_code == 200  # a batch takes one token, whatever its size
    denied = await create(limited)
    assert denied.status_code == 429
    assert denied.headers["retry-after"] == "1"
    assert denied.text == (
        '{"error":"rate limit exceeded","operation":"create_task","retryAfterSeconds":1,"scope":"producer"}'
    )
    assert (await create(limited, OTHER_PRODUCER)).status_code == 202  # another tenant's bucket
    limited.clock.advance(1)
    assert (await create(limited)).status_code == 202
    metrics = (await limited.client.get("/metrics")).text
    assert 'codeq_rate_limit_hits_total{operation="create_task",scope="producer"} 1.0' in metrics


async def test_worker_bucket(limited: Api) -> None:
    assert (await limited.claim()).status_code == 204
    denied = await limited.post("/tasks/claim/batch", {"count": 2}, WORKER)
    assert denied.status_code == 429 and denied.headers["retry-after"] == "10"
    assert denied.json() == {
        "error": "rate limit exceeded",
        "operation": "claim",
        "retryAfterSeconds": 10,
        "scope": "worker",
    }
    limited.clock.advance(10)
    assert (await limited.claim()).status_code == 204


async def test_admin_cleanup_bucket(limited: Api) -> None:
    assert (await limited.post("/admin/tasks/cleanup", {})).status_code == 200
    denied = await limited.post("/admin/tasks/cleanup", {})
    assert denied.status_code == 429 and denied.json()["scope"] == "admin"
    assert denied.headers["retry-after"] == "60"
    assert (await limited.get("/admin/queues")).status_code == 200  # only cleanup is limited


async def test_invalid_tokens_never_take_tokens(limited: Api) -> None:
    for _ in range(5):
        refused = await create(limited, {"Authorization": "Bearer nope"})
        assert refused.status_code == 401
    assert (await create(limited)).status_code == 202


async def test_unlimited_by_default(api: Api) -> None:
    for _ in range(20):
        assert (await create(api)).status_code == 202
