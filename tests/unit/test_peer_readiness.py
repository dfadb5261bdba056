"""Peer readiness for /raft/status: each peer's real /readyz over loopback, probed by a tick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from codeq.service.peer_readiness import PeerReadiness
from tests.support.server import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answering(status: str) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"GET /readyz HTTP/1.1\r\n")
            body = b'{"status":"x"}'
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # reads the request and never answers it


@pytest.fixture
async def peers() -> AsyncIterator[dict[str, str]]:
    handlers = {"a": answering("200 OK"), "b": answering("503 Service Unavailable"), "c": silent}
    writers: list[asyncio.StreamWriter] = []

    def tracked(handle: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await handle(reader, writer)

        return run

    servers = {node: await asyncio.start_server(tracked(h), "127.0.0.1", 0) for node, h in handlers.items()}
    urls = {node: f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/" for node, s in servers.items()}
    urls["d"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    yield urls
    for server in servers.values():
        server.close()
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    for server in servers.values():
        await server.wait_closed()


async def test_each_peer_is_as_ready_as_its_readyz_says_and_silence_is_not_ready(
    peers: dict[str, str],
) -> None:
    readiness = PeerReadiness(peers, timeout_seconds=0.3)
    try:
        assert [readiness.ready_of(node) for node in "abcde"] == [None] * 5  # not probed yet
        await readiness.tick()
        assert [readiness.ready_of(node) for node in "abcde"] == [True, False, False, False, None]
    finally:
        await readiness.aclose()


async def test_every_tick_replaces_the_last_answers() -> None:
    statuses = {"a": 200, "b": 200}

    async def probe(url: str, timeout: float) -> int:
        return statuses[url.removeprefix("http://").split(".")[0]]

    readiness = PeerReadiness({"a": "http://a.test", "b": "http://b.test", "c": ""}, probe=probe)
    await readiness.tick()
    assert (readiness.ready_of("a"), readiness.ready_of("b")) == (True, True)
    statuses["b"] = 503
    await readiness.tick()
    assert (readiness.ready_of("a"), readiness.ready_of("b")) == (True, False)
    assert readiness.ready_of("c") is None  # no HTTP address configured: never probed
