"""Producer against a live server: create, read, wait for results, batches, errors, redirects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from codeq.client import (
    AsyncProducer,
    BadRequest,
    BatchItemError,
    NotFound,
    PayloadTooLarge,
    Producer,
    ResultNotReady,
    Task,
    TaskSpec,
    Unauthorized,
)
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import LiveServer, Redirector, Served

WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}


async def _claim_and_complete(server: LiveServer, result: object) -> str:
    """Act as a worker with plain HTTP, so producer tests do not depend on the SDK's worker."""
    async with httpx.AsyncClient(base_url=f"{server.url}/v1/codeq", headers=WORKER) as http:
        claimed = await http.post("/tasks/claim", json={"commands": ["render"]})
        task_id: str = claimed.json()["id"]
        done = await http.post(f"/tasks/{task_id}/result", json={"status": "COMPLETED", "result": result})
        assert done.status_code == 200, done.text
        return task_id


async def test_create_and_get_return_typed_tasks(producer: AsyncProducer) -> None:
    task = await producer.create("render", {"page": 1, "tags": ["a"]}, priority=5, max_attempts=3)
    assert isinstance(task, Task)
    assert task.command == "render" and task.payload == {"page": 1, "tags": ["a"]}
    assert task.status == "PENDING" and task.priority == 5 and task.max_attempts == 3
    assert task.attempts == 0 and task.tenant_id == "dev" and not task.replayed
    assert task.created_at.tzinfo is not None
    again = await producer.get(task.id)
    assert again.id == task.id and again.payload == task.payload


async def test_result_long_poll_returns_once_a_worker_completes(
    server: LiveServer, producer: AsyncProducer
) -> None:
    task = await producer.create("render", "page-7")
    waiting = asyncio.ensure_future(producer.result(task.id, wait=10))
    await _claim_and_complete(server, {"url": "s3://x"})
    result = await waiting
    assert result.status == "COMPLETED" and result.result == {"url": "s3://x"}
    assert result.task is not None and result.task.status == "COMPLETED" and result.task.attempts == 1


async def test_a_missing_result_is_result_not_ready_and_a_missing_task_not_found(
    producer: AsyncProducer,
) -> None:
    task = await producer.create("render", 1)
    with pytest.raises(ResultNotReady) as not_ready:
        await producer.result(task.id)
    assert not_ready.value.status == 404 and not_ready.value.message == "result not found"
    with pytest.raises(NotFound) as missing:
        await producer.get("00000000-0000-4000-8000-000000000000")
    assert not isinstance(missing.value, ResultNotReady)


async def test_idempotent_replay_is_a_normal_return_marked_replayed(producer: AsyncProducer) -> None:
    first = await producer.create("render", 1, idempotency_key="job-1")
    again = await producer.create("render", 2, idempotency_key="job-1")
    assert not first.replayed and again.replayed
    assert again.id == first.id and again.payload == 1


async def test_delay_and_run_at_postpone_delivery(server: LiveServer, producer: AsyncProducer) -> None:
    await producer.create("render", 1, delay_seconds=3600)
    await producer.create("render", 2, run_at=datetime.now(UTC) + timedelta(hours=1))
    async with httpx.AsyncClient(base_url=f"{server.url}/v1/codeq", headers=WORKER) as http:
        assert (await http.post("/tasks/claim", json={"commands": ["render"]})).status_code == 204
    with pytest.raises(ValueError, match="timezone-aware"):
        await producer.create("render", 3, run_at=datetime(2030, 1, 1))


async def test_errors_are_typed_with_status_message_and_field(
    server: LiveServer, producer: AsyncProducer
) -> None:
    with pytest.raises(BadRequest) as bad:
        await producer.create("   ", 1)
    assert bad.value.status == 400 and bad.value.message == "invalid command"
    assert bad.value.field == "command"
    with pytest.raises(PayloadTooLarge) as large:
        await producer.create("render", "x" * 70_000)
    assert large.value.status == 413
    async with AsyncProducer(server.url, "not-a-token") as stranger:
        with pytest.raises(Unauthorized) as denied:
            await stranger.create("render", 1)
    assert denied.value.status == 401


async def test_create_many_chunks_by_100_and_reports_items_alone(producer: AsyncProducer) -> None:
    specs: list[TaskSpec | dict[str, object]] = [TaskSpec(command="render", payload=i) for i in range(150)]
    specs[120] = {"command": " ", "payload": 120}
    specs[3] = TaskSpec(command="render", payload=3, delay_seconds=-1)
    outcomes = await producer.create_many(specs)
    assert len(outcomes) == 150
    errors = {i: o for i, o in enumerate(outcomes) if not isinstance(o, Task)}
    assert set(errors) == {3, 120}
    assert isinstance(errors[120], BatchItemError) and errors[120].index == 120
    assert errors[120].message == "invalid command"
    tasks = [o for o in outcomes if isinstance(o, Task)]
    assert [t.payload for t in tasks[:4]] == [0, 1, 2, 4]
    assert len({t.id for t in tasks}) == 148


async def test_redirects_are_followed_with_method_body_and_token(server: LiveServer) -> None:
    redirector = Redirector(server.url)
    follower = Served(redirector)
    try:
        async with AsyncProducer(follower.url, PRODUCER_TOKEN) as producer:
            task = await producer.create("render", {"via": "follower"})
            assert task.payload == {"via": "follower"}
            assert (await producer.get(task.id)).id == task.id
            with pytest.raises(ResultNotReady):
                await producer.result(task.id)
    finally:
        await follower.stop()
    assert redirector.redirected == 3


async def test_blocking_producer_works_from_other_threads(server: LiveServer) -> None:
    def use() -> tuple[Task, Task, str]:
        with Producer(server.url, PRODUCER_TOKEN) as producer:
            created = producer.create("render", {"sync": True})
            outcomes = producer.create_many([{"command": "render", "payload": 1}])
            assert isinstance(outcomes[0], Task)
            return created, producer.get(created.id), producer.base_url

    created, read, base_url = await asyncio.to_thread(use)
    assert read.id == created.id and read.payload == {"sync": True}
    assert base_url == server.url
