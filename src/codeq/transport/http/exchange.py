"""One HTTP/1.1 request and its response: the ASGI receive/send pair over a connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol

from codeq.transport.http.asgi import ON_DISCONNECT, REPLY, ASGIApp, Message, Scope

log = logging.getLogger("codeq.http")

# A body chunk larger than this, waiting for the app to read it, pauses reading the socket.
BODY_HIGH_WATER_BYTES = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT: Message = {"type": "http.disconnect"}
_NO_BODY_STATUSES = frozenset({204, 304})


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {status.value: status_line(status.value) for status in HTTPStatus}
_REPLY_HEAD = b"%bcontent-type: %b\r\ncontent-length: %d\r\nx-request-id: %b\r\n%b"


class _DateHeader:
    """The `date` header, formatted once per second rather than once per response, followed
    by the fields every response of this process carries (`identify`)."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""
        self._fields = b""

    def identify(self, fields: bytes) -> None:
        """Header lines (each ending in CRLF) to send with every response from now on."""
        self._fields = fields
        self._second = 0

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n" + self._fields
        return self._line


DATE = _DateHeader()


class Connection(Protocol):
    """What an exchange needs from its connection."""

    def write(self, data: bytes) -> None: ...
    def resume_reading(self) -> None: ...
    def exchange_done(self, exchange: Exchange) -> None: ...
    def drain(self) -> Awaitable[None]: ...


class Exchange:
    """The ASGI cycle of one request: the body the parser delivers and the response the app sends.

    Everything runs on the event loop; the connection feeds `add_body`/`end_body`/`disconnect`
    and the app's task awaits `receive`/`send`.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_final_sent",
        "_gone",
        "_head",
        "_length",
        "_wake",
        "body_complete",
        "buffered",
        "chunked",
        "disconnected",
        "expect_continue",
        "is_head",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
    )

    def __init__(self, conn: Connection, scope: Scope, keep_alive: bool, expect_continue: bool) -> None:
        self._conn = conn
        self.scope = scope
        scope["extensions"] = {ON_DISCONNECT: self.watch_disconnect, REPLY: self.reply}
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.is_head = scope["method"] == "HEAD"
        self._chunks: list[bytes] = []
        self.buffered = 0
        self.body_complete = False
        self._final_sent = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self._length: int | None = None
        self._head = b""
        self._wake: asyncio.Future[None] | None = None
        self._gone: Callable[[], None] | None = None

    # -- fed by the connection --------------------------------------------------------------
    def add_body(self, chunk: bytes) -> None:
        if self.response_complete:
            return  # the app answered without reading: the rest of the body is dropped
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self._notify()

    def end_body(self) -> None:
        self.body_complete = True
        self._notify()

    def disconnect(self) -> None:
        self.disconnected = True
        self._notify()
        gone, self._gone = self._gone, None
        if gone is not None:
            gone()

    def watch_disconnect(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` once when the client goes away: a long poll's cheap watcher."""
        self._gone = callback
        if callback is not None and self.disconnected:
            self.disconnect()

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _wait(self) -> None:
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    # -- the app's side -----------------------------------------------------------------------
    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            log.exception("unhandled error in the HTTP app")
            if not self.response_started:
                await self._fail(500)
        finally:
            # The scope's extension is a bound method of this exchange, which holds the scope:
            # a cycle that only the garbage collector would free, a dozen objects a request.
            self.scope["extensions"] = None
            if not self.response_complete:
                self.keep_alive = False  # a half-sent response can only be ended by closing
            self._conn.exchange_done(self)

    async def _fail(self, status: int) -> None:
        body = b'{"error":"internal error"}'
        start: Message = {"type": "http.response.start", "status": status, "headers": []}
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body})

    async def receive(self) -> Message:
        while not self._chunks and not self.body_complete and not self.disconnected:
            if self.expect_continue and not self.response_started:
                self.expect_continue = False
                self._conn.write(CONTINUE)
            self._conn.resume_reading()
            await self._wait()
        if self._chunks:
            body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks.clear()
            self.buffered = 0
            self._conn.resume_reading()
            self._final_sent = self.body_complete
            return {"type": "http.request", "body": body, "more_body": not self.body_complete}
        if self.body_complete and not self._final_sent and not self.disconnected:
            self._final_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # The whole body was delivered: a further receive means "tell me when the client goes".
        while not self.disconnected and not self.response_complete:
            await self._wait()
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("response already started")
            self.response_started = True
            self._head = self._encode_head(message["status"], message.get("headers", ()))
        elif kind == "http.response.body":
            await self._send_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def reply(self, status: int, content_type: bytes, body: bytes, request_id: bytes) -> None:
        """The whole response at once (the `codeq.reply` extension): what `send` would write
        for a start with exactly these three headers and one final body."""
        if self.response_started:
            raise RuntimeError("response already started")
        self.response_started = self.response_complete = True
        if not self.disconnected:
            length = len(body)  # a HEAD's length is that of the body a GET would have had
            if self.is_head or status in _NO_BODY_STATUSES or status < 200:
                body = b""
            head = _REPLY_HEAD % (
                _STATUS_LINES.get(status) or status_line(status),
                content_type,
                length,
                request_id,
                DATE.line(),
            )
            self._conn.write(head + (b"\r\n" if self.keep_alive else b"connection: close\r\n\r\n") + body)
        self._notify()

    async def _send_body(self, body: bytes, more_body: bool) -> None:
        if not self.response_started or self.response_complete:
            raise RuntimeError("response body outside a started response")
        if self.disconnected:
            self.response_complete = not more_body
            return
        head, self._head = self._head, b""
        if self.is_head or self._length == 0:
            body = b""
        elif self.chunked:
            body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + (
                b"" if more_body else b"0\r\n\r\n"
            )
        self._conn.write(head + body if head else body)
        if not more_body:
            self.response_complete = True
            self._notify()
        else:
            await self._conn.drain()

    def _encode_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        parts = [_STATUS_LINES.get(status) or status_line(status)]
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                self._length = int(value)
            elif lower == b"connection" and value.lower() == b"close":
                self.keep_alive = False
                continue
            elif lower == b"transfer-encoding":
                continue  # framing is ours to decide
            parts.append(b"%b: %b\r\n" % (name, value))
        if status in _NO_BODY_STATUSES or status < 200:
            self._length = 0
        elif self._length is None:
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(DATE.line())
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)
