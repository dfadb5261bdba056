"""One lifecycle for the node: start-up opens in order, shutdown closes in exactly the reverse order
and leaves no asyncio task and no store thread behind, also when start-up fails halfway."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest

from codeq.app import App
from codeq.core.clock import FakeClock
from tests.grpc.conftest import make_settings

PRODUCER = {"Authorization": "Bearer dev-producer"}

OPENED = [
    "store 0",
    "store 1",
    "task service",
    "reaper",
    "schedules",
    "outbound HTTP client",
    "result callbacks",
    "result-callback runner",
    "notifier",
    "notifier runner",
    "subscription cleanup",
    "streams",
]


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kv-shard")]


async def create_tasks(app: App, count: int) -> None:
    """Writes on every shard, so each store's writer thread exists."""
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://codeq.test") as client:
        for i in range(count):
            body = {"command": "c", "payload": i}
            answer = await client.post("/v1/codeq/tasks", json=body, headers=PRODUCER)
            assert answer.status_code in (200, 201, 202), answer.text


async def test_shutdown_is_the_exact_reverse_of_start_up_and_leaves_nothing_running() -> None:
    before = asyncio.all_tasks()
    app = App(make_settings(num_shards=2), clock=FakeClock())
    await app.start()
    assert app.lifecycle.opened == OPENED
    assert app.runner.running and app.streams.producer is not None
    await create_tasks(app, 8)
    assert asyncio.all_tasks() > before and len(store_threads()) == 2
    reaper = app.runner

    await app.stop()

    assert app.lifecycle.closed == OPENED[::-1]
    assert asyncio.all_tasks() == before
    assert store_threads() == []
    assert not reaper.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = app.services


async def test_a_start_up_that_fails_closes_what_it_opened_in_reverse() -> None:
    before = asyncio.all_tasks()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(make_settings(worker_stream_addr=f"127.0.0.1:{port}"), clock=FakeClock())
        with pytest.raises(OSError, match="cannot listen"):
            await app.start()
    assert app.lifecycle.opened == [name for name in OPENED if name != "store 1"]
    assert app.lifecycle.closed == app.lifecycle.opened[::-1]
    assert asyncio.all_tasks() == before
    assert store_threads() == []


async def test_the_node_is_an_async_context_manager() -> None:
    async with App(make_settings(), clock=FakeClock()) as app:
        assert app.runner.running
    assert app.lifecycle.closed == app.lifecycle.opened[::-1] != []
