"""A claim long poll over our HTTP server ends when its client goes away (in-process server)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator

import pytest

from codeq.transport.http.exchange import Exchange
from codeq.transport.http.limits import HttpServerLimits
from codeq.transport.http.server import HttpServer
from tests.api.conftest import make_settings, running

CLAIM = b'{"commands":["poll"],"waitSeconds":30}'
CREATE = b'{"command":"poll","payload":{}}'


def post(path: bytes, token: bytes, body: bytes) -> bytes:
    return (
        b"POST /v1/codeq%b HTTP/1.1\r\nhost: t\r\nauthorization: Bearer %b\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (path, token, len(body), body)
    )


async def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return int(head[9:12]), await reader.readexactly(length)
    finally:
        writer.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with running(make_settings()) as node:
        server = HttpServer(node.app.asgi, HttpServerLimits(), cap=100)
        await server.start("127.0.0.1", 0)
        try:
            yield server.port
        finally:
            await server.stop(grace_seconds=1)


async def test_a_long_poll_whose_client_left_does_not_take_the_next_task(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post(b"/tasks/claim", b"dev-worker", CLAIM))
    await writer.drain()
    await exchange(port, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")  # the poll is waiting now
    writer.close()
    await writer.wait_closed()
    await exchange(port, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")  # and its client is gone

    status, body = await exchange(port, post(b"/tasks", b"dev-producer", CREATE))
    assert status == 202
    created = json.loads(body)["id"]
    # Had the poll outlived its client, the new task's arrival would have woken it and it
    # would have claimed the task for nobody.
    status, body = await exchange(port, post(b"/tasks/claim", b"dev-worker", b'{"commands":["poll"]}'))
    assert (status, json.loads(body)["id"]) == (200, created)


async def test_a_long_poll_answers_when_a_task_arrives(port: int) -> None:
    poll = asyncio.ensure_future(exchange(port, post(b"/tasks/claim", b"dev-worker", CLAIM)))
    await exchange(port, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
    status, body = await exchange(port, post(b"/tasks", b"dev-producer", CREATE))
    assert status == 202
    claimed_status, claimed = await poll
    assert (claimed_status, json.loads(claimed)["id"]) == (200, json.loads(body)["id"])


async def test_answered_requests_leave_no_garbage_cycles(port: int) -> None:
    """Each exchange is freed when its request ends, not by the garbage collector: a cycle per
    request (the scope's disconnect extension is a method of the exchange holding the scope)
    made every request's scope, headers and exchange wait for a collection."""
    await exchange(port, post(b"/tasks", b"dev-producer", CREATE))  # warm: first-use caches
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            assert (await exchange(port, post(b"/tasks", b"dev-producer", CREATE)))[0] == 202
            assert (await exchange(port, post(b"/tasks/claim", b"dev-worker", CLAIM)))[0] == 200
        await asyncio.sleep(0)  # the last exchange's task has finished
        left = [o for o in gc.get_objects() if isinstance(o, Exchange)]
    finally:
        gc.enable()
    assert left == []


async def test_a_reply_written_at_once_has_the_head_the_asgi_messages_would_give(port: int) -> None:
    """Our server writes a plain reply in one piece (the `codeq.reply` extension): the same
    status line and headers as the two ASGI messages, the body's length even for HEAD."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /nowhere HTTP/1.1\r\nhost: t\r\nx-request-id: abc\r\n\r\n")
        writer.write(b"HEAD /nowhere HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        answer = await reader.read()  # to the close the second request asked for
    finally:
        writer.close()
    first, _, rest = answer.partition(b"\r\n\r\n")
    lines = first.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 404 Not Found"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert headers[b"content-type"] == b"application/json" and headers[b"x-request-id"] == b"abc"
    assert b"date" in headers and b"connection" not in headers
    body = rest[: int(headers[b"content-length"])]
    assert body == b'{"error":"not found"}'
    second = rest[len(body) :]
    head, _, after = second.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"\r\ncontent-length: %d\r\n" % len(body) in head and b"\r\nconnection: close" in head
    assert after == b""  # HEAD: the length of the body, not the body
