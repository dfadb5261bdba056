"""Connections of the HTTP/1.1 client: the _Conn protocol and the per-origin _Pool that reuses them."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from codeq.h1.message import (
    H1ConnectError,
    H1Error,
    H1ProtocolError,
    H1Response,
    H1Timeout,
    H1TransportError,
    ResponseParser,
    _Dropped,
)


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
        self.tag: str | None = None  # the affinity header's value in its last response
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probe: Callable[[], bool] | None = None
        self._waiter: asyncio.Future[H1Response] | None = None
        self._parser = ResponseParser()
        self._got_bytes = False

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
        self._got_bytes, self.reusable = False, False
        self._parser.start(head_only)
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
        try:
            response = self._parser.feed(data)
        except Exception as exc:  # a parser bug must fail this request, not strand it
            self._fail(exc if isinstance(exc, H1Error) else H1ProtocolError(f"bad response: {exc!r}"))
            return
        if response is not None:
            self._deliver(response)

    def eof_received(self) -> None:
        if self._waiter is not None and (response := self._parser.at_eof()) is not None:
            self._deliver(response)
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

    def _deliver(self, response: H1Response) -> None:
        waiter, self._waiter = self._waiter, None
        # Bytes past the end of the response were never asked for: the connection is out of step.
        self.reusable = self._parser.keep and not self._parser.leftover and not self.closed
        if waiter is not None and not waiter.done():
            waiter.set_result(response)


@dataclass(frozen=True)
class _Limits:
    max_connections: int
    connect_timeout: float
    idle_seconds: float
    affinity_header: str | None = None  # a response field that tags its connection


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

    async def exchange(
        self, data: bytes, head_only: bool, replayable: bool, timeout: float, prefer: str | None = None
    ) -> H1Response:
        ex = _Exchange(data, head_only)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                await self._acquire()
                try:
                    response = await self._run(ex, replayable, prefer)
                    if self.limits.affinity_header is not None and ex.conn is not None:
                        ex.conn.tag = response.header(self.limits.affinity_header)
                    return response
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

    async def _run(self, ex: _Exchange, replayable: bool, prefer: str | None) -> H1Response:
        if self.closed:
            raise RuntimeError("the H1Client is closed")
        ex.conn = self._take_idle(prefer)
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

    def _take_idle(self, prefer: str | None = None) -> _Conn | None:
        """The newest idle connection still alive; with `prefer`, the newest tagged so if any."""
        idle = self._idle
        if idle and asyncio.get_running_loop().time() - idle[-1].idle_since > self.limits.idle_seconds:
            for conn in idle:  # the newest has expired, so every older one has too
                conn.discard()
            idle.clear()
        if prefer is not None:
            for at in range(len(idle) - 1, -1, -1):
                if idle[at].tag == prefer:
                    conn = idle.pop(at)
                    if conn.alive():
                        return conn
                    conn.discard()
                    break
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
