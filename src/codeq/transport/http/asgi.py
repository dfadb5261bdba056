"""A small ASGI layer: the request view handlers read, the reply they return, the route table.

codeq's routes are few and fixed, so a dict of exact paths plus a handful of
`prefix/{param}/suffix` patterns replaces a general router; see docs/adr/0001.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from codeq.core.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# Our server's scope extension: `watch(callback)` has `callback` called once if the client
# goes away (`watch(None)` stops watching). Under other ASGI servers (the tests' httpx
# transport) it is absent and a long poll watches `receive` instead.
ON_DISCONNECT = "codeq.on_disconnect"
DisconnectWatch = Callable[[Callable[[], None] | None], None]
# Our server's other extension: `reply(status, content_type, body, request_id)` writes a whole
# response with just those headers at once, in place of the two ASGI `send` messages (a
# head built from one template rather than header by header).
REPLY = "codeq.reply"
DirectReply = Callable[[int, bytes, bytes, bytes], None]

log = logging.getLogger("codeq.http")

JSON = b"application/json"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = JSON


class Request:
    """What a handler may read: method, path, path parameters, headers, query and body."""

    __slots__ = ("_headers", "_query", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, path_params: dict[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self._query: dict[str, str] | None = None
        self._headers: dict[bytes, bytes] | None = None

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def query_string(self) -> str:
        raw: bytes = self.scope.get("query_string", b"")
        return raw.decode("latin-1")

    def header(self, name: bytes) -> str | None:
        """A request header by lower-case name (the first one, if repeated)."""
        value = self.raw_header(name)
        return None if value is None else value.decode("latin-1")

    def raw_header(self, name: bytes) -> bytes | None:
        headers = self._headers
        if headers is None:
            # Built once per request (a handler reads several headers); reversed, so that
            # of repeated headers the first one wins.
            headers = self._headers = dict(reversed(self.scope["headers"]))
        return headers.get(name)

    def direct_reply(self) -> DirectReply | None:
        """Our server's `codeq.reply` extension, if the server has it."""
        extensions = self.scope.get("extensions")
        reply: DirectReply | None = extensions.get(REPLY) if extensions else None
        return reply

    def query(self, name: str) -> str | None:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string))
        return self._query.get(name)

    async def body(self, limit: int) -> bytes:
        """The whole body; more than `limit` bytes is a 413, refused before reading it all."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def disconnect_watch(self) -> DisconnectWatch | None:
        extensions = self.scope.get("extensions")
        watch: DisconnectWatch | None = extensions.get(ON_DISCONNECT) if extensions else None
        return watch

    async def disconnected(self) -> None:
        """Return when the client goes away (skipping any body the handler did not read)."""
        while (await self.receive())["type"] != "http.disconnect":
            pass


Handler = Callable[[Request], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class _Pattern:
    method: str
    prefix: str
    suffix: str
    name: str
    handler: Handler


class Router:
    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._exact_paths: set[str] = set()
        self._patterns: list[_Pattern] = []
        self._templates: dict[Handler, str] = {}

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._templates[handler] = path
        if "{" not in path:
            self._exact[(method, path)] = handler
            self._exact_paths.add(path)
            return
        prefix, rest = path.split("{", 1)
        name, suffix = rest.split("}", 1)
        self._patterns.append(_Pattern(method, prefix, suffix, name, handler))

    def routes(self) -> list[tuple[str, str]]:
        """Every (method, path template) registered, for the OpenAPI check."""
        exact = list(self._exact)
        return exact + [(p.method, f"{p.prefix}{{{p.name}}}{p.suffix}") for p in self._patterns]

    def template_of(self, handler: Handler | None) -> str:
        """The path template a handler was added with: the label of its requests' metrics."""
        return "unmatched" if handler is None else self._templates.get(handler, "unmatched")

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, path params, path known for another method)."""
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler, {}, False
        other_method = path in self._exact_paths
        for pattern in self._patterns:
            if path.startswith(pattern.prefix) and path.endswith(pattern.suffix):
                value = path[len(pattern.prefix) : len(path) - len(pattern.suffix)]
                if not value or "/" in value:
                    continue
                if pattern.method == method:
                    return pattern.handler, {pattern.name: value}, False
                other_method = True
        return None, {}, other_method


class RequestIds:
    """`X-Request-Id` values: the caller's, or a fresh 32-hex one (random prefix + counter)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex().encode()
        self._counter = itertools.count(1)

    def new(self) -> bytes:
        return b"%b%016x" % (self._prefix, next(self._counter))

    def of(self, request: Request) -> bytes:
        value = request.raw_header(b"x-request-id")
        return value[:128] if value else self.new()


async def send_reply(send: Send, reply: Reply, request_id: bytes, direct: DirectReply | None = None) -> None:
    """Send `reply`: through our server's `direct` reply when it has no extra headers."""
    if direct is not None and not reply.headers:
        direct(reply.status, reply.content_type, reply.body, request_id)
        return
    headers = [
        (b"content-type", reply.content_type),
        (b"content-length", b"%d" % len(reply.body)),
        (b"x-request-id", request_id),
        *reply.headers,
    ]
    start: Message = {"type": "http.response.start", "status": reply.status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": reply.body})
