"""One HTTP/1.1 connection: httptools parsing, the limits enforced before the app runs, keep-alive.

The limits act on the connection before any request reaches the app (and so before
authentication): the head's size and header count, a deadline for the head, for the body
and for an idle keep-alive connection. Request smuggling is refused by llhttp, the parser
inside httptools (both Content-Length and Transfer-Encoding, a repeated Content-Length, an
invalid chunk size are parse errors, answered 400 with the connection closed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httptools

from codeq.transport.http.asgi import ASGIApp, Scope
from codeq.transport.http.exchange import BODY_HIGH_WATER_BYTES, DATE, Exchange, status_line

if TYPE_CHECKING:
    from codeq.transport.http.connections import ConnectionRegistry
    from codeq.transport.http.limits import HttpServerLimits

# Pipelined requests waiting behind the running one before reading the socket pauses.
MAX_PIPELINED = 8
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_HEAD, _BODY, _IDLE, _LINGER = "head", "body", "idle", "linger"
_NEVER = float("inf")
# How long a refused connection is drained before it is closed.
LINGER_SECONDS = 1.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


class HttpConnection(asyncio.Protocol):
    """An asyncio protocol serving HTTP/1.1 requests one at a time to an ASGI app."""

    def __init__(self, app: ASGIApp, limits: HttpServerLimits, registry: ConnectionRegistry) -> None:
        self._app = app
        self._limits = limits
        self._registry = registry
        self._loop = asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._closed = False
        self._shutting_down = False
        self._read_paused = False
        self._drained: asyncio.Future[None] | None = None
        self.deadline = _NEVER  # loop time at which the armed deadline expires
        self._timer_kind: str | None = None
        self._reading_head = True
        self._head_bytes = 0
        self._head_size = 0
        self._max_headers = limits.max_headers  # read per header: one attribute, not two
        self._max_head_bytes = limits.max_head_bytes
        self._lingering = False
        self._rejection = 400
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False
        self._parsing: Exchange | None = None
        self._running: Exchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._pipeline: deque[Exchange] = deque()
        self._client: tuple[str, int] | None = None
        self._server: tuple[str, int] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport; uvloop's does not subclass asyncio.Transport, so no isinstance check.
        tcp: asyncio.Transport = transport  # type: ignore[assignment]
        self._transport = tcp
        if not self._registry.admit(self):
            self._closed = True
            tcp.abort()
            return
        self._client = _address(tcp.get_extra_info("peername"))
        self._server = _address(tcp.get_extra_info("sockname"))
        self._arm(_HEAD, self._limits.head_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._registry.remove(self)
        self._disarm()
        for exchange in (self._running, self._parsing, *self._pipeline):
            if exchange is not None:
                exchange.disconnect()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # a refused request's remaining bytes are read and dropped
        if self._reading_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade_refused()
        except httptools.HttpParserError:
            self.refuse(self._rejection)
            return
        # Checked after feeding: a head that completed within this chunk is fine; one still
        # incomplete past the limit is refused, so a head never buffers more than one read.
        if self._reading_head and self._head_bytes > self._limits.max_head_bytes:
            self.refuse(431)

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._expect_continue = False
        if self._timer_kind != _HEAD:
            self._arm(_HEAD, self._limits.head_timeout_seconds)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # A whole head can arrive in one read, so its size is also counted here, where
        # httptools hands over each header complete.
        headers = self._headers
        self._head_size += len(name) + len(value) + 4
        if len(headers) >= self._max_headers or self._head_size > self._max_head_bytes:
            self._rejection = 431
            raise _Refused()
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._arm(_BODY, self._limits.body_timeout_seconds)
        keep_alive = self._parser.should_keep_alive() and not self._shutting_down
        exchange = Exchange(self, self._scope(), keep_alive, self._expect_continue)
        self._parsing = exchange
        if self._running is None:
            self._start(exchange)
        else:
            self._pipeline.append(exchange)
            if len(self._pipeline) >= MAX_PIPELINED:
                self._pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is not None:
            exchange.add_body(body)
            if exchange.buffered > BODY_HIGH_WATER_BYTES:
                self._pause_reading()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._disarm()
        if self._parsing is not None:
            self._parsing.end_body()
            self._parsing = None
        if self._running is None and not self._closed:  # the app answered before the body ended
            self._arm(_IDLE, self._limits.idle_timeout_seconds)

    # -- the exchange's side ----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    async def drain(self) -> None:
        if self._drained is not None:
            await self._drained

    def resume_reading(self) -> None:
        if self._read_paused and not self._closed and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()

    def exchange_done(self, exchange: Exchange) -> None:
        self._running = None
        self._task = None
        if self._closed or self._lingering:
            return
        if not exchange.keep_alive or self._shutting_down:
            self._close()
            return
        if self._pipeline:
            self._start(self._pipeline.popleft())
            self.resume_reading()
            return
        self._registry.quiet(self)
        if self._timer_kind is None:  # between requests, nothing of the next one yet
            self._arm(_IDLE, self._limits.idle_timeout_seconds)

    # -- shutdown and refusals --------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop after the request in flight (if any); close now when there is none."""
        self._shutting_down = True
        if self._running is None:
            self._close()

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    def refuse(self, status: int) -> None:
        """Answer `status` (unless a response is under way) and close the connection.

        The close lingers: our side is shut for writing and what the client still sends is
        read and dropped for a moment, because closing with unread bytes would reset the
        connection and the client could lose the answer.
        """
        if self._closed or self._lingering:
            return
        if self._running is not None and self._running.response_started:
            self._close()
            return
        body = b'{"error":"%b"}' % status_line(status)[13:-2].lower()
        length = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        self.write(status_line(status) + length + DATE.line() + b"connection: close\r\n\r\n" + body)
        self._lingering = True
        for exchange in (self._running, self._parsing, *self._pipeline):
            if exchange is not None:
                exchange.disconnect()
        self._pipeline.clear()
        self.resume_reading()
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()
        self._arm(_LINGER, LINGER_SECONDS)

    def _upgrade_refused(self) -> None:
        # llhttp stops at an Upgrade request (h2c, websocket); it is served as plain HTTP/1.1
        # and the connection closes after it, since the parser cannot continue past it.
        for exchange in (self._running, *self._pipeline):
            if exchange is not None:
                exchange.keep_alive = False

    def _close(self) -> None:
        self._disarm()
        if not self._closed and self._transport is not None:
            self._closed = True
            self._registry.remove(self)
            self._transport.close()

    def _start(self, exchange: Exchange) -> None:
        self._registry.busy(self)
        self._running = exchange
        self._task = self._loop.create_task(exchange.run(self._app))

    def _pause_reading(self) -> None:
        if not self._read_paused and not self._closed and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    # -- deadlines --------------------------------------------------------------------------
    # A deadline is a number checked by the registry's sweep, not a timer per request: arming
    # and cancelling loop timers three times a request cost more than the sweep.
    def _arm(self, kind: str, seconds: float) -> None:
        self._timer_kind = kind
        self.deadline = self._loop.time() + seconds

    def _disarm(self) -> None:
        self._timer_kind = None
        self.deadline = _NEVER

    def check_deadline(self, now: float) -> None:
        if now >= self.deadline and self._timer_kind is not None:
            kind = self._timer_kind
            self._disarm()
            self._expired(kind)

    def _expired(self, kind: str) -> None:
        if kind in (_IDLE, _LINGER) or (kind == _HEAD and self._head_bytes == 0):
            self._close()  # nothing was asked: nobody to answer
        elif kind == _BODY and (self._parsing is None or self._parsing.response_started):
            self._close()  # the request was answered already; a 408 now would be a second answer
        else:
            self.refuse(408)

    def _scope(self) -> Scope:
        url = self._url
        if url[:1] != b"/":
            parsed = httptools.parse_url(url)
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        raw_path, _, query = url.partition(b"?")
        path = raw_path.decode("latin-1")
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": self._parser.get_http_version(),
            "method": self._parser.get_method().decode("ascii"),
            "scheme": "http",
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": self._headers,
            "client": self._client,
            "server": self._server,
        }


def _address(info: object) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
