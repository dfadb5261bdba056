"""The SDK's admin task tools (issue 14), and a worker whose task is cancelled under it."""

from __future__ import annotations

import asyncio

import pytest

from codeq.client import Admin, AsyncAdmin, AsyncProducer, AsyncWorker, Conflict, Job, TaskCancelled
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import LiveServer, running


async def test_list_cancel_and_overview(server: LiveServer, producer: AsyncProducer) -> None:
    created = [await producer.create("render", {"n": n}) for n in range(3)]
    async with AsyncAdmin(server.url, PRODUCER_TOKEN) as admin:
        first = await admin.list_tasks("render", state="ready", order="oldest", limit=2)
        assert [t.id for t in first.tasks] == [t.id for t in created[:2]] and first.next_cursor
        rest = await admin.list_tasks("render", state="ready", order="oldest", cursor=first.next_cursor)
        assert [t.id for t in rest.tasks] == [created[2].id] and rest.next_cursor == ""
        cancelled = await admin.cancel(created[0].id)
        assert cancelled.status == "CANCELLED"
        page = await admin.list_tasks("render", state="cancelled")
        assert [t.id for t in page.tasks] == [created[0].id]
        [row] = await admin.overview()
        assert (row.command, row.ready, row.in_progress) == ("render", 2, 0)

    def blocking_calls() -> None:  # on a thread: the server runs on this test's loop
        with Admin(server.url, PRODUCER_TOKEN) as blocking:
            assert blocking.cancel(created[0].id).status == "CANCELLED"  # idempotent
            assert [r.command for r in blocking.overview()] == ["render"]
            assert len(blocking.list_tasks("render").tasks) == 2

    await asyncio.to_thread(blocking_calls)


async def test_cancelling_a_finished_task_is_a_conflict(server: LiveServer, producer: AsyncProducer) -> None:
    task = await producer.create("render", {})
    worker = AsyncWorker(server.url, WORKER_TOKEN)
    worker.register("render", lambda job: None)
    async with running(worker):
        await producer.result(task.id, wait=10)
    async with AsyncAdmin(server.url, PRODUCER_TOKEN) as admin:
        with pytest.raises(Conflict) as caught:
            await admin.cancel(task.id)
    assert not isinstance(caught.value, TaskCancelled) and caught.value.message == "task already finished"


async def test_a_worker_drops_a_task_cancelled_while_it_ran(
    server: LiveServer, producer: AsyncProducer
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    worker = AsyncWorker(server.url, WORKER_TOKEN)

    @worker.handler("slow")
    async def slow(job: Job) -> dict[str, int]:
        started.set()
        await release.wait()
        return {"done": 1}

    task = await producer.create("slow", {})
    async with running(worker), AsyncAdmin(server.url, PRODUCER_TOKEN) as admin:
        await started.wait()
        marked = await admin.cancel(task.id)
        assert marked.status == "IN_PROGRESS" and marked.cancel_requested
        release.set()
        result = await producer.result(task.id, wait=10)
    assert result.status == "CANCELLED" and result.error == "cancelled"
    assert worker.stats.cancelled == 1
    assert worker.stats.ack_errors == 0 and worker.stats.completed == 0
