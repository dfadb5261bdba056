"""One stream's plumbing: reading, bounded handlers, serialized writes, token expiry and the end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import CodeqError, NotLeader
from codeq.transport.grpc.errors import abort, code_name

log = logging.getLogger("codeq.grpc")

T = TypeVar("T")
ErrorEvent = Callable[[str, str], Message]  # (code, message) -> that package's ServerEvent
Handler = Callable[[bytes], Awaitable[None]]
# Folds events waiting to be written into fewer messages (e.g. acks into an ack batch).
Coalesce = Callable[[list[Message]], list[Message]]


def _as_is(events: list[Message]) -> list[Message]:
    return events


# A lapsing token is re-checked at least this often, so a clock that jumps is noticed too.
_EXPIRY_RECHECK_SECONDS = 60.0
_INTERNAL = code_name(grpc.StatusCode.INTERNAL)
LEADER_METADATA = "codeq-leader"  # trailing metadata naming the leader's streams


class Stream:
    """The server side of one bidirectional stream.

    Events are read by one reader task and each is handled in its own task; at most
    `max_in_flight` run at once, and when that many are running the reader stops reading, so
    HTTP/2 flow control pushes back on the client (spec 07 gap 1). Writes are serialized.
    The stream ends at the client's half-close, at a read error, when the token lapses
    (spec 07 gap 5) or when `stop()` is called; in-flight handlers finish first, except
    pending Ready waits, which are answered at once (see `unless_closing`).
    """

    def __init__(
        self,
        context: grpc.aio.ServicerContext,
        clock: Clock,
        max_in_flight: int,
        error_event: ErrorEvent,
        coalesce: Coalesce = _as_is,
    ) -> None:
        self.context = context
        self._clock = clock
        self._error_event = error_event
        self._coalesce = coalesce
        self._slots = asyncio.Semaphore(max_in_flight)
        self._handlers: set[asyncio.Task[None]] = set()
        self._outbox: list[tuple[Message, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._broken = False
        self._closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[Any] | None = None
        self._end: tuple[grpc.StatusCode, str] | None = None

    # -- the two phases ------------------------------------------------------------------

    async def first_event(self) -> bytes | None:
        """The first message, or None when the client half-closed before sending one."""
        raw = await self._read_until_stopped(self.context.read())
        if self._end is not None:
            await abort(self.context, *self._end)
        return None if raw is grpc.aio.EOF else raw

    async def serve(self, principal: Principal, handle: Handler) -> None:
        """Handle events until the stream ends, then wait for the handlers and end the RPC."""
        watchdog = None
        if principal.expires_at_ms is not None:
            watchdog = asyncio.ensure_future(self._watch_expiry(principal))
        try:
            await self._read_until_stopped(self._read_loop(principal, handle))
        except asyncio.CancelledError:
            # The RPC itself is gone (client cancel, hard stop): nobody reads any answer.
            for task in self._handlers:
                task.cancel()
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
            await self._drain()
        if self._end is not None:
            await abort(self.context, *self._end)

    def stop(self, status: grpc.StatusCode, message: str) -> None:
        """End the stream with `status` once the handlers in flight have answered."""
        if self._end is None:
            self._end = (status, message)
        if self._reader is not None:
            self._reader.cancel()

    # -- what handlers use ---------------------------------------------------------------

    async def send(self, event: Message) -> bool:
        """Write one event; False when it surely did not go out (the stream is broken).

        Writes are serialized by one writer task; events queued while it writes go out
        together next, folded by `coalesce` (acks into ack batches): each message costs the
        server ~100 µs in grpc.aio, so fewer, fuller messages are the throughput.
        """
        if self._broken:
            return False
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outbox.append((event, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_outbox())
        return await written

    async def _write_outbox(self) -> None:
        while self._outbox:
            queued, self._outbox = self._outbox, []
            ok = not self._broken
            for message in self._coalesce([event for event, _ in queued]) if ok else ():
                try:
                    await self.context.write(message)
                except Exception as exc:  # grpc raises several types once the RPC is over
                    self._broken, ok = True, False
                    log.debug("stream write failed: %r", exc)
                    self.stop(grpc.StatusCode.UNAVAILABLE, "stream write failed")
                    break
            for _, written in queued:
                if not written.done():
                    written.set_result(ok)

    def redirect(self, error: CodeqError, kind: str) -> bool:
        """A not-leader answer that names the leader's `kind` stream ends this stream instead:
        UNAVAILABLE with the leader in trailing metadata, which the SDK follows and retries
        there (spec 06 gap 10). True when it did; the event then gets no answer of its own."""
        leader = error.leader_streams.get(kind) if isinstance(error, NotLeader) else None
        if not leader:
            return False
        self.context.set_trailing_metadata(((LEADER_METADATA, leader),))
        self.stop(grpc.StatusCode.UNAVAILABLE, f"not leader (leader: {leader})")
        return True

    async def send_error(self, code: str, message: str) -> None:
        await self.send(self._error_event(code, message))

    async def unless_closing(self, work: Coroutine[Any, Any, T]) -> T | None:
        """Run `work`, or give up on it (None) when the stream starts closing."""
        job = asyncio.ensure_future(work)
        try:
            await asyncio.wait((job, self._closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not job.done():
                job.cancel()
        await asyncio.wait((job,))
        # A job that finished before the cancel landed has claimed something: deliver it.
        return None if job.cancelled() else job.result()

    # -- internals -----------------------------------------------------------------------

    async def _read_until_stopped(self, reading: Coroutine[Any, Any, T]) -> T | None:
        """Run a read as the cancellable reader task; None when `stop()` cancelled it."""
        reader = asyncio.ensure_future(reading)
        self._reader = reader
        if self._end is not None:
            reader.cancel()
        try:
            await asyncio.wait((reader,))
        finally:
            if not reader.done():
                reader.cancel()
        self._reader = None
        return None if reader.cancelled() else reader.result()

    async def _read_loop(self, principal: Principal, handle: Handler) -> None:
        while True:
            raw = await self.context.read()
            if raw is grpc.aio.EOF:
                return
            if principal.expired(self._clock.now_ms()):
                self._end = self._end or (grpc.StatusCode.UNAUTHENTICATED, "token expired")
                return
            await self._slots.acquire()
            task = asyncio.ensure_future(self._guard(handle(raw)))
            self._handlers.add(task)
            task.add_done_callback(self._finished)

    async def _guard(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            log.exception("stream event handler failed")
            await self.send_error(_INTERNAL, "internal error")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._slots.release()

    async def _drain(self) -> None:
        if not self._closing.done():
            self._closing.set_result(None)
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _watch_expiry(self, principal: Principal) -> None:
        assert principal.expires_at_ms is not None
        while True:
            remaining_ms = principal.expires_at_ms - self._clock.now_ms()
            if remaining_ms <= 0:
                self.stop(grpc.StatusCode.UNAUTHENTICATED, "token expired")
                return
            await asyncio.sleep(min(remaining_ms / 1000, _EXPIRY_RECHECK_SECONDS))
