"""Fixtures for the SDK tests: a live codeq on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from codeq.client import AsyncProducer
from tests.sdk.live import LiveServer, sdk_settings, stream_settings

PRODUCER_TOKEN = "dev-producer"
WORKER_TOKEN = "dev-worker"


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    live = LiveServer(sdk_settings())
    await live.start()
    yield live
    if live.app is not None:
        await live.stop()


@pytest.fixture
async def streams() -> AsyncIterator[LiveServer]:
    """A live codeq serving HTTP and both gRPC streams."""
    live = LiveServer(stream_settings())
    await live.start()
    yield live
    if live.app is not None:
        await live.stop()


@pytest.fixture
async def producer(server: LiveServer) -> AsyncIterator[AsyncProducer]:
    async with AsyncProducer(server.url, PRODUCER_TOKEN) as client:
        yield client
