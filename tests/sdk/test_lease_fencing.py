"""Two SDK workers on one token, one lease expiry: the late worker's result is refused.

The server runs on a fake clock, so the lease runs out when the test says so; the reaper is
ticked by hand. Worker A's handler is held until worker B holds the task again, then A
finishes first: its late result must be refused and B's must be the one stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from codeq.app import App
from codeq.client import AsyncProducer, AsyncWorker, CodeqError, Job, NotOwner
from codeq.core.clock import FakeClock
from codeq.service.maintenance import Maintenance
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import Served, running, stream_settings

LEASE_SECONDS = 10
BACKOFF_SECONDS = 1  # sdk_settings' fixed backoff
WAIT = 10  # seconds any one step may take before the test fails instead of hanging


@dataclass
class Node:
    app: App
    clock: FakeClock
    http_url: str
    worker_url: str


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    clock = FakeClock()
    app = App(stream_settings(), clock=clock)
    await app.start()
    served = Served(app.asgi)
    assert app.streams.worker is not None
    try:
        yield Node(app, clock, served.url, f"grpc://127.0.0.1:{app.streams.worker.port}")
    finally:
        await served.stop()
        await app.stop()


@dataclass
class Held:
    """A handler that reports when it starts and returns `value` once released."""

    value: str
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    refused: asyncio.Future[CodeqError] = field(default_factory=asyncio.Future)

    async def __call__(self, job: Job) -> str:
        self.started.set()
        await self.release.wait()
        return self.value

    def on_ack_error(self, job: Job, error: CodeqError) -> None:
        if not self.refused.done():
            self.refused.set_result(error)


def _worker(node: Node, held: Held, transport: str, worker_id: str | None) -> AsyncWorker:
    url = node.worker_url if transport == "grpc" else node.http_url
    worker = AsyncWorker(
        url,
        WORKER_TOKEN,
        lease_seconds=LEASE_SECONDS,
        wait_seconds=1,
        shutdown_timeout=1,  # a failing test must not wait for a held handler
        on_ack_error=held.on_ack_error,
        http_url=node.http_url,
        worker_id=worker_id,
    )
    worker.register("render", held)
    return worker


async def _expire_the_lease(node: Node) -> None:
    node.clock.advance(LEASE_SECONDS + 1)
    await Maintenance(node.app.node, node.clock).tick()
    node.clock.advance(BACKOFF_SECONDS + 1)


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("worker_id", [None, "pod"], ids=["own-ids", "shared-id"])
async def test_the_late_worker_is_refused_and_the_new_holder_wins(
    node: Node, transport: str, worker_id: str | None
) -> None:
    first, second = Held("first"), Held("second")
    worker_a = _worker(node, first, transport, worker_id)
    worker_b = _worker(node, second, transport, worker_id)
    assert (worker_a.worker_id == worker_b.worker_id) == (worker_id is not None)
    async with AsyncProducer(node.http_url, PRODUCER_TOKEN) as producer:
        task = await producer.create("render", {"n": 1})
        async with running(worker_a):
            await asyncio.wait_for(first.started.wait(), WAIT)
            await _expire_the_lease(node)
            async with running(worker_b):
                await asyncio.wait_for(second.started.wait(), WAIT)
                first.release.set()  # A finishes late, while B holds the task
                refused = await asyncio.wait_for(first.refused, WAIT)
                assert isinstance(refused, NotOwner), refused
                second.release.set()
                result = await producer.result(task.id, wait=WAIT)
        assert (await producer.get(task.id)).attempts == 2
    assert result.status == "COMPLETED" and result.result == {"value": "second"}
    assert worker_a.stats.ack_errors == 1 and worker_a.stats.completed == 0
    assert worker_b.stats.completed == 1 and worker_b.stats.ack_errors == 0


def test_every_worker_object_has_its_own_default_worker_id() -> None:
    ids = {AsyncWorker("http://127.0.0.1:1", "t").worker_id for _ in range(3)}
    assert len(ids) == 3 and all(len(i) <= 128 and i.isprintable() for i in ids)
    assert AsyncWorker("http://127.0.0.1:1", "t", worker_id="mine").worker_id == "mine"
