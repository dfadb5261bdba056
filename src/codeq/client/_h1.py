"""A small asyncio HTTP/1.1 client for the SDK: stdlib only, keep-alive pools, strict framing.

Usage::

    client = H1Client("https://node:8443/prefix", max_connections=64, connect_timeout=5.0)
    reply = await client.request(
        "POST", "/v1/codeq/tasks", headers=(("Authorization", "Bearer t"),), body=b"{}", timeout=10.0
    )
    reply.status, reply.body, reply.header("location")  # int, bytes, str | None
    await client.aclose()

- `H1Client(base_url, *, max_connections=64, connect_timeout=5.0, verify=True, idle_seconds=4.0)`:
  `base_url` is `http://` or `https://`, any host, `host:port`, `[IPv6]` literal, and an optional
  path prefix. `verify` is True (system CAs), False (no certificate check) or an `ssl.SSLContext`.
- `request(method, path, *, headers=(), body=b"", timeout)`: `path` starts with "/" (it may
  carry "?query") and is appended to the prefix; an absolute `http(s)://` URL goes to that
  origin as is (for following redirects). Host, `Connection: keep-alive` and Content-Length
  (always with a body, and 0 for an empty POST/PUT/PATCH) are set here; callers must not pass
  Host, Content-Length, Transfer-Encoding or Connection. Pass the same tuple of headers each
  time: its encoding is cached. `timeout` bounds the whole exchange (pool wait, connect, send,
  receive). A bad method, path or header raises ValueError; a closed client RuntimeError.
- `H1Response`: `status`, `headers` (the (name, value) pairs as received), `body` (complete),
  and `header(name)`: case-insensitive, several fields joined by ", ", None when absent.
- Errors, all `H1Error` with `request_sent: bool` (could the server have the request?):
  `H1ConnectError` (never sent: refused, DNS, TLS, connect timeout); `H1TransportError` (the
  connection broke after the request was written: request_sent=True, or False if it was closed
  before the write); `H1ProtocolError` (a malformed response, or one over `MAX_HEAD_BYTES` /
  `MAX_BODY_BYTES`; a transport error); `H1Timeout` (also a `TimeoutError`).
- Pools: one per origin (scheme, host, port), at most `max_connections` connections each;
  further requests wait FIFO. Idle connections are reused newest first and dropped after
  `idle_seconds` (below uvicorn's 5 s keep-alive, so the server rarely closes one first). A
  connection is reused only after a complete response without `Connection: close` (HTTP/1.0:
  only with keep-alive); after a timeout, cancellation or error it is closed. A client
  belongs to the event loop that first uses it.
- Stale connections: a pooled connection that the server closed while idle is detected before
  writing (the loop saw EOF, or a zero-timeout poll finds the socket readable) and replaced by
  a new one, so such a request is sent once. If the server instead closes the connection after
  the write without a response byte, the request may have been processed: it is retried once
  on a new connection only for GET, HEAD, OPTIONS, TRACE, PUT and DELETE; other methods get
  `H1TransportError(request_sent=True)` and the caller decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import select
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_CHUNK_LINE_BYTES = 4096
IDLE_SECONDS = 4.0

Fields = tuple[tuple[str, str], ...]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00\r\n]")
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")
_HEX = b"0123456789abcdefABCDEF"
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class H1Error(Exception):
    """Base of this module's errors; `request_sent` says whether the server may have the request."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class H1ConnectError(H1Error):
    """No connection could be made (refused, DNS, TLS, connect timeout): nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class H1TransportError(H1Error):
    """The connection failed after the request was written (unless `request_sent` is False)."""


class H1ProtocolError(H1TransportError):
    """The response broke HTTP/1.1 framing or exceeded a size limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=True)


class H1Timeout(H1Error, TimeoutError):
    """The request's `timeout` ran out; `request_sent` says whether it had been written."""


class _Dropped(H1TransportError):
    """Closed or reset after the write, before any response byte: the one retryable failure."""


class H1Response:
    """A complete response: `status`, `headers` as received, and the whole `body`."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Fields, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The field's value (case-insensitive name; repeated fields joined by ", ")."""
        key = name.lower()
        values = [value for field, value in self.headers if field.lower() == key]
        return ", ".join(values) if values else None

    def __repr__(self) -> str:
        return f"H1Response({self.status}, {len(self.headers)} headers, {len(self.body)} bytes)"


def _parse_head(block: bytes) -> tuple[int, bool, Fields]:
    """(status, is HTTP/1.1, fields) of a response head without its final blank line."""
    lines = block.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (
        len(code) == 3 and code.isascii() and code.isdigit() and rest[3:4] in ("", " ")
    ):
        raise H1ProtocolError(f"bad status line {lines[0][:80]!r}")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and fields:  # obsolete line folding (RFC 9112 §5.2)
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip(" \t"))
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise H1ProtocolError(f"bad header line {line[:80]!r}")
        fields.append((name, value.strip(" \t")))
    return int(code), version == "HTTP/1.1", tuple(fields)


def _content_length(value: str, seen: int | None) -> int:
    numbers = {part.strip(" \t") for part in value.split(",")}
    number = numbers.pop()
    if numbers or not (number.isascii() and number.isdigit()) or seen not in (None, int(number)):
        raise H1ProtocolError(f"bad Content-Length {value[:40]!r}")
    return int(number)


def _framing(status: int, http11: bool, fields: Fields, head_only: bool) -> tuple[int, int, bool]:
    """(body mode, Content-Length, keep-alive) of a final response (RFC 9112 §6.3)."""
    length: int | None = None
    coding: str | None = None
    tokens: set[str] = set()
    for name, value in fields:
        key = name.lower()
        if key == "content-length":
            length = _content_length(value, length)
        elif key == "transfer-encoding":
            coding = value.rsplit(",", 1)[-1].strip(" \t").lower()
        elif key == "connection":
            tokens.update(token.strip(" \t").lower() for token in value.split(","))
    keep = "close" not in tokens if http11 else "keep-alive" in tokens
    if head_only or status in (204, 304):
        return _NO_BODY, 0, keep
    if coding is not None:
        # Chunked must be the final coding, else the body runs to close; with a Content-Length
        # as well the message is suspect (smuggling), so its connection is not reused.
        return (_CHUNKED, 0, keep and length is None) if coding == "chunked" else (_UNTIL_CLOSE, 0, False)
    if length is None:
        return _UNTIL_CLOSE, 0, False
    if length > MAX_BODY_BYTES:
        raise H1ProtocolError(f"response body of {length} bytes exceeds {MAX_BODY_BYTES}")
    return _LENGTH, length, keep


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not digits or len(digits) > 16 or digits.strip(_HEX):
        raise H1ProtocolError(f"bad chunk size line {line[:40]!r}")
    return int(digits, 16)


def _readable_probe(fd: int) -> Callable[[], bool]:
    """A zero-timeout check for pending input (EOF, reset, stray bytes) on an idle socket."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return lambda: bool(poller.poll(0))
    return lambda: bool(select.select([fd], [], [], 0)[0])  # Windows has no poll()


class _Conn(asyncio.Protocol):
    """One connection: one request at a time, its response parsed as the bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probe: Callable[[], bool] | None = None
        self._waiter: asyncio.Future[H1Response] | None = None
        self._buf = bytearray()
        self._body = bytearray()
        self._got_bytes = self._head_only = self._keep = False
        self._status = self._mode = self._left = self._scanned = 0
        self._trailer_bytes = -1
        self._fields: Fields = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a request must not wait for Nagle's algorithm
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._probe = _readable_probe(sock.fileno())

    def alive(self) -> bool:
        """Not closed, and nothing (EOF, reset, stray bytes) arrived while idle."""
        return not self.closed and not (self._probe is not None and self._probe())

    def send(self, data: bytes, head_only: bool) -> asyncio.Future[H1Response]:
        """Write one encoded request; the future resolves to its response."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise H1TransportError("connection closed before the request was sent", request_sent=False)
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        self._head_only, self._got_bytes, self.reusable = head_only, False, False
        self._status, self._scanned, self._trailer_bytes = 0, 0, -1
        self._body.clear()
        self.transport.write(data)
        return waiter

    def discard(self) -> None:
        self.closed, self.reusable = True, False
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.discard()  # bytes nobody asked for: this connection is out of step
            return
        self._got_bytes = True
        self._buf += data
        try:
            self._advance()
        except Exception as exc:  # a parser bug must fail this request, not strand it
            self._fail(exc if isinstance(exc, H1Error) else H1ProtocolError(f"bad response: {exc!r}"))

    def eof_received(self) -> None:
        if self._waiter is not None and self._status and self._mode == _UNTIL_CLOSE:
            self._deliver(bytes(self._body))
        self.closed = True
        self._fail(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc)
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail(self, cause: Exception | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if not isinstance(cause, H1Error):
            why = f": {cause}" if cause else ""
            if self._got_bytes:
                cause = H1TransportError(f"connection lost mid-response{why}", request_sent=True)
            else:
                cause = _Dropped(f"server closed the connection without a response{why}", request_sent=True)
        waiter.set_exception(cause)
        self.discard()

    def _advance(self) -> None:
        if not self._status and not self._read_head():
            return
        buf = self._buf
        if self._mode == _LENGTH:
            if len(buf) >= self._left:
                body = bytes(buf[: self._left])
                del buf[: self._left]
                self._deliver(body)
        elif self._mode == _CHUNKED:
            if self._read_chunks():
                self._deliver(bytes(self._body))
        elif self._mode == _UNTIL_CLOSE:
            self._body += buf
            buf.clear()
            if len(self._body) > MAX_BODY_BYTES:
                raise H1ProtocolError(f"response body exceeds {MAX_BODY_BYTES} bytes")
        else:
            self._deliver(b"")

    def _read_head(self) -> bool:
        """Parse the next final response head from the buffer; False until it is complete."""
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n", self._scanned)
            if end < 0 or end > MAX_HEAD_BYTES:
                if len(buf) > MAX_HEAD_BYTES:
                    raise H1ProtocolError(f"response head exceeds {MAX_HEAD_BYTES} bytes")
                self._scanned = max(0, len(buf) - 3)
                return False
            status, http11, fields = _parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            self._scanned = 0
            if status == 101:
                raise H1ProtocolError("unexpected 101 Switching Protocols")
            if status >= 200:
                break
            # 1xx (100 Continue, 103 Early Hints) are interim: the final answer follows.
        self._mode, self._left, self._keep = _framing(status, http11, fields, self._head_only)
        self._status, self._fields = status, fields
        return True

    def _read_chunks(self) -> bool:
        """Decode chunks from the buffer into the body; True once the last one and trailers are in."""
        buf = self._buf
        while self._take_chunk_data():
            eol = buf.find(b"\r\n", 0, MAX_CHUNK_LINE_BYTES + 2)
            if eol < 0:
                if len(buf) > MAX_CHUNK_LINE_BYTES:
                    raise H1ProtocolError("chunk size line too long")
                return False
            line = bytes(buf[:eol])
            del buf[: eol + 2]
            if self._trailer_bytes >= 0:  # after the last chunk: trailer fields (ignored)
                if self._end_of_trailers(len(line)):
                    return True
            elif (size := _chunk_size(line)) == 0:
                self._trailer_bytes = 0
            elif len(self._body) + size > MAX_BODY_BYTES:
                raise H1ProtocolError(f"response body exceeds {MAX_BODY_BYTES} bytes")
            else:
                self._left = size
        return False

    def _take_chunk_data(self) -> bool:
        """Move the current chunk's data into the body; False while it is incomplete."""
        end = self._left + 2
        if not self._left:
            return True
        if len(self._buf) < end:
            return False
        if self._buf[end - 2 : end] != b"\r\n":
            raise H1ProtocolError("chunk data not followed by CRLF")
        self._body += self._buf[: end - 2]
        del self._buf[:end]
        self._left = 0
        return True

    def _end_of_trailers(self, size: int) -> bool:
        self._trailer_bytes += size + 2
        if self._trailer_bytes > MAX_HEAD_BYTES:
            raise H1ProtocolError(f"response trailers exceed {MAX_HEAD_BYTES} bytes")
        return size == 0

    def _deliver(self, body: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        # Bytes past the end of the response were never asked for: the connection is out of step.
        self.reusable = self._keep and not self._buf and not self.closed
        if waiter is not None and not waiter.done():
            waiter.set_result(H1Response(self._status, self._fields, body))


@dataclass(frozen=True)
class _Limits:
    max_connections: int
    connect_timeout: float
    idle_seconds: float


class _Exchange:
    """One request's progress through a pool: the connection it holds and whether it was sent."""

    __slots__ = ("conn", "data", "head_only", "sent")

    def __init__(self, data: bytes, head_only: bool) -> None:
        self.data, self.head_only = data, head_only
        self.conn: _Conn | None = None
        self.sent = False

    async def send(self) -> H1Response:
        assert self.conn is not None
        waiter = self.conn.send(self.data, self.head_only)
        self.sent = True
        return await waiter


class _Pool:
    """Connections to one origin: idle ones reused newest first, waiters served in order."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limits: _Limits) -> None:
        self.host, self.port, self.tls, self.limits = host, port, tls, limits
        self.label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.closed = False
        self._idle: list[_Conn] = []
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def exchange(self, data: bytes, head_only: bool, replayable: bool, timeout: float) -> H1Response:
        ex = _Exchange(data, head_only)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                await self._acquire()
                try:
                    return await self._run(ex, replayable)
                except _Dropped as exc:  # callers see the public class
                    raise H1TransportError(str(exc), request_sent=True) from exc.__cause__
                except BaseException:
                    if ex.conn is not None:  # even if the response had just arrived in full
                        ex.conn.reusable = False
                    raise
                finally:
                    self._checkin(ex.conn)
                    self._release()
        except TimeoutError:
            if not deadline.expired():
                raise
            raise H1Timeout(f"no response from {self.label} in {timeout}s", request_sent=ex.sent) from None

    async def _run(self, ex: _Exchange, replayable: bool) -> H1Response:
        if self.closed:
            raise RuntimeError("the H1Client is closed")
        ex.conn = self._take_idle()
        if ex.conn is None:
            ex.conn = await self._connect()
            return await ex.send()
        try:
            return await ex.send()
        except _Dropped as dropped:
            # The server closed the pooled connection as the request went out. It may have read
            # it: only a method that is safe to repeat gets one more try, on a new connection.
            if not replayable:
                raise
            ex.conn = None
            try:
                ex.conn = await self._connect()
            except H1ConnectError as exc:
                raise dropped from exc
            return await ex.send()

    def _take_idle(self) -> _Conn | None:
        idle = self._idle
        if idle and asyncio.get_running_loop().time() - idle[-1].idle_since > self.limits.idle_seconds:
            for conn in idle:  # the newest has expired, so every older one has too
                conn.discard()
            idle.clear()
        while idle:
            conn = idle.pop()
            if conn.alive():
                return conn
            conn.discard()  # closed by the server while idle: the request has not been sent
        return None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        hostname = self.host if self.tls is not None else None
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                _, conn = await loop.create_connection(
                    _Conn, self.host, self.port, ssl=self.tls, server_hostname=hostname
                )
        except TimeoutError as exc:  # connect_timeout or ETIMEDOUT; the request's deadline cancels
            raise H1ConnectError(f"cannot connect to {self.label}: timed out") from exc
        except OSError as exc:
            raise H1ConnectError(f"cannot connect to {self.label}: {exc}") from exc
        return conn

    def _checkin(self, conn: _Conn | None) -> None:
        if conn is None:
            return
        if conn.reusable and not conn.closed and not self.closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.discard()

    async def _acquire(self) -> None:
        if self._active < self.limits.max_connections and not self._waiters:
            self._active += 1
            return
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot
        except BaseException:
            if slot.done() and not slot.cancelled():
                self._release()  # handed a slot while being cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # _release may have dropped it already
                    self._waiters.remove(slot)
            raise

    def _release(self) -> None:
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)  # the slot moves to the next waiter; _active is unchanged
                return
        self._active -= 1

    def close(self) -> list[asyncio.Future[None]]:
        """Close the idle connections; returns futures that resolve once their sockets are."""
        self.closed = True
        lost = [conn.lost for conn in self._idle]
        for conn in self._idle:
            conn.discard()
        self._idle.clear()
        return lost


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        raise ValueError(f"not an http:// or https:// URL with a host: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme], target


def _host_block(scheme: str, host: str, port: int) -> bytes:
    name = host if host.isascii() else host.encode("idna").decode("ascii")
    name = f"[{name}]" if ":" in name else name
    name = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
    return f"\r\nHost: {name}\r\nConnection: keep-alive\r\n".encode("ascii")


def _encode_fields(headers: Sequence[tuple[str, str]]) -> bytes:
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or name.lower() in _RESERVED or _BAD_VALUE.search(value):
            raise ValueError(f"header {name!r} is reserved or not valid")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def _length_line(method: str, body: bytes) -> bytes:
    if body:
        return b"Content-Length: %d\r\n" % len(body)
    return b"Content-Length: 0\r\n" if method in _BODY_METHODS else b""


def _tls_context(verify: bool | ssl.SSLContext) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


class H1Client:
    """Async HTTP/1.1 client with a keep-alive pool per origin (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
        verify: bool | ssl.SSLContext = True,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        scheme, host, port, path = _split_url(base_url)
        if "?" in path or "#" in base_url:
            raise ValueError(f"a base URL takes no query or fragment: {base_url!r}")
        self._base_path = path.rstrip("/")
        self._limits = _Limits(max_connections, connect_timeout, idle_seconds)
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._pools: dict[tuple[str, str, int], tuple[_Pool, bytes]] = {}
        self._fields_cache: dict[Fields, bytes] = {}
        self._closed = False
        self._base = self._pool(scheme, host, port)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        timeout: float,
    ) -> H1Response:
        """Send one request and read its whole response (see the module docstring)."""
        if self._closed:
            raise RuntimeError("the H1Client is closed")
        if path.startswith("/"):
            (pool, host_block), target = self._base, self._base_path + path
        else:
            scheme, host, port, target = _split_url(path)
            pool, host_block = self._pool(scheme, host, port)
        if not _TOKEN.fullmatch(method) or _BAD_TARGET.search(target):
            raise ValueError(f"bad method or path: {method!r} {target[:80]!r}")
        data = b"".join(
            (
                f"{method} {target} HTTP/1.1".encode("ascii"),
                host_block,
                self._fields(headers),
                _length_line(method, body),
                b"\r\n",
                body,
            )
        )
        return await pool.exchange(data, method == "HEAD", method in _IDEMPOTENT, timeout)

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        self._closed = True
        lost = [future for pool, _ in self._pools.values() for future in pool.close()]
        if lost:  # aborted sockets are closed on the loop's next turn
            await asyncio.wait(lost, timeout=1.0)

    def _pool(self, scheme: str, host: str, port: int) -> tuple[_Pool, bytes]:
        key = (scheme, host, port)
        found = self._pools.get(key)
        if found is None:
            if scheme == "https" and self._tls is None:
                self._tls = _tls_context(self._verify)
            tls = self._tls if scheme == "https" else None
            found = self._pools[key] = (_Pool(host, port, tls, self._limits), _host_block(*key))
        return found

    def _fields(self, headers: Sequence[tuple[str, str]]) -> bytes:
        if not headers:
            return b""
        if not isinstance(headers, tuple):
            return _encode_fields(headers)
        block = self._fields_cache.get(headers)
        if block is None:
            if len(self._fields_cache) >= 64:  # callers pass a few fixed tuples; bound the rest
                self._fields_cache.clear()
            block = self._fields_cache[headers] = _encode_fields(headers)
        return block
