"""A scriptable HTTP/1.1 server on 127.0.0.1 for the client tests: each connection runs a handler."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class Peer:
    """One accepted connection, as the fake server sees it."""

    def __init__(self, server: FakeServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.requests: list[Request] = []

    async def read_request(self) -> Request | None:
        """The next request on this connection; None once the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        line, *lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = line.split(" ")
        assert version == "HTTP/1.1"
        headers: dict[str, str] = {}
        for item in lines:
            name, _, value = item.partition(":")
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, body)
        self.requests.append(request)
        self.server.requests.append(request)
        self.server.arrivals.put_nowait(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_closed_by_client(self) -> None:
        await self.reader.read()  # returns at EOF


Handler = Callable[[Peer], Awaitable[None]]


@dataclass
class FakeServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0
    peers: list[Peer] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    arrivals: asyncio.Queue[Request] = field(default_factory=asyncio.Queue)
    tls: ssl.SSLContext | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def connections(self) -> int:
        return len(self.peers)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(self, reader, writer)
        self.peers.append(peer)
        # The client may go away at any point, and the test's end cancels what is left (which
        # asyncio 3.11 would log as an error if the cancellation escaped).
        with contextlib.suppress(
            ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ssl.SSLError
        ):
            try:
                await self.handler(peer)
            finally:
                writer.close()
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[FakeServer]:
    server = FakeServer(handler, host, tls=tls)
    listener = await asyncio.start_server(server._accept, host, 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in server._tasks:
            task.cancel()
        await asyncio.gather(*server._tasks, return_exceptions=True)
        await listener.wait_closed()


def reply(status: int = 200, body: bytes = b"", *headers: str, reason: str = "OK") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def keep_serving(response: bytes) -> Handler:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(response)

    return handler
