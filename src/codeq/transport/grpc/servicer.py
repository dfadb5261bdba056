"""What both stream servicers share: limits, the Hello handshake, and ending live streams."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message

from codeq.auth.principal import Principal
from codeq.core.errors import Forbidden, Unauthenticated
from codeq.service.container import Services
from codeq.transport.grpc.errors import abort
from codeq.transport.grpc.stream import Handler, Stream

MiB = 1024 * 1024
# Trailing metadata of a stream refused so that its client connects again, to another process
# of the node (ADR 0009): UNAVAILABLE before the HelloAck, nothing of the client's applied.
REBALANCE_METADATA = "codeq-rebalance"


class Admission(Protocol):
    """Whether this process takes a new authenticated stream (with a process per shard)."""

    def admit(self, kind: str, peer: str) -> bool:
        """True: counted here until `release`; False: refuse it, the client goes elsewhere."""
        ...

    def release(self, kind: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_message_bytes: int = 4 * MiB  # per gRPC message, both directions (spec 07 gap 10)
    max_in_flight: int = 256  # events handled at once per stream (spec 07 gap 1)
    max_ready_count: int = 256  # tasks one Ready may ask for (spec 07 gap 2)
    ready_wait_seconds: int = 30  # how long a Ready waits for a task unless it says (spec 07 gap 3)
    # Before authentication a stream costs the server memory and a task while proving nothing:
    # it must send a valid Hello within this deadline or it ends UNAUTHENTICATED.
    hello_timeout_seconds: float = 10.0
    # HTTP/2 streams one connection may have open at once (grpc.max_concurrent_streams); more
    # wait in the client. 100 is the minimum RFC 9113 recommends.
    max_concurrent_streams: int = 100
    # Streams of one connection still waiting for their Hello; beyond it a new stream ends
    # RESOURCE_EXHAUSTED at once. Our SDK opens one stream per connection.
    max_unauthenticated_streams_per_connection: int = 16


class StreamServicer(ABC):
    """One stream RPC's servicer. Subclasses answer the first event; this runs the rest."""

    KIND = ""  # "producer" or "worker"

    def __init__(self, services: Services, limits: StreamLimits) -> None:
        self.services = services
        self.limits = limits
        self.admission: Admission | None = None  # set with a process per shard
        self._live: set[Stream] = set()
        self._admitted: dict[Stream, Admission] = {}  # counted there until they end
        self._closed = False
        self._awaiting_hello: Counter[str] = Counter()  # by connection (the peer's address)
        self.observe: Callable[[Handler], Handler] | None = None  # metrics and spans per message

    async def handle_rpc(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        """The gRPC method: handshake, then events until the stream ends."""
        stream = Stream(
            context, self.services.tasks.clock, self.limits.max_in_flight, self.error_event, self.coalesce
        )
        self._live.add(stream)
        try:
            if self._closed:
                stream.stop(grpc.StatusCode.UNAVAILABLE, "server shutting down")
            principal, handle = await self._handshake(stream, context.peer())
            await stream.serve(principal, handle if self.observe is None else self.observe(handle))
        finally:
            self._live.discard(stream)
            admitted = self._admitted.pop(stream, None)
            if admitted is not None:
                admitted.release(self.KIND)

    async def admit(self, stream: Stream) -> None:
        """Called between authentication and the HelloAck: count the stream here, or end it
        UNAVAILABLE with `codeq-rebalance: 1` so its client connects again (ADR 0009)."""
        admission = self.admission
        if admission is None:
            return
        if not admission.admit(self.KIND, stream.context.peer()):
            stream.context.set_trailing_metadata(((REBALANCE_METADATA, "1"),))
            await abort(stream.context, grpc.StatusCode.UNAVAILABLE, "rebalancing: connect again")
        self._admitted[stream] = admission

    async def _handshake(self, stream: Stream, peer: str) -> tuple[Principal, Handler]:
        """The Hello, within the deadline and the connection's bound on streams awaiting one."""
        if self._awaiting_hello[peer] >= self.limits.max_unauthenticated_streams_per_connection:
            await abort(
                stream.context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many streams awaiting Hello on this connection",
            )
        self._awaiting_hello[peer] += 1
        deadline = asyncio.get_running_loop().call_later(
            self.limits.hello_timeout_seconds,
            stream.stop,
            grpc.StatusCode.UNAUTHENTICATED,
            f"no Hello within {self.limits.hello_timeout_seconds:g} s",
        )
        try:
            raw = await stream.first_event()
            if raw is None:
                await abort(stream.context, grpc.StatusCode.FAILED_PRECONDITION, "first event must be Hello")
            return await self.open_session(stream, raw)
        finally:
            deadline.cancel()
            self._awaiting_hello[peer] -= 1
            if self._awaiting_hello[peer] <= 0:
                del self._awaiting_hello[peer]

    def awaiting_hello(self) -> int:
        """Streams open but not yet authenticated, over every connection."""
        return sum(self._awaiting_hello.values())

    @abstractmethod
    async def open_session(self, stream: Stream, raw: bytes) -> tuple[Principal, Handler]:
        """Check the first event (a Hello), authenticate, acknowledge; the event handler."""

    @abstractmethod
    def error_event(self, code: str, message: str) -> Message:
        """This package's ServerEvent carrying a ServerError."""

    def coalesce(self, events: list[Message]) -> list[Message]:
        """Events waiting to be written, folded into fewer messages where the protocol allows."""
        return events

    def shutdown(self) -> None:
        """Refuse new streams and end the live ones once their handlers have answered."""
        self._closed = True
        for stream in list(self._live):
            stream.stop(grpc.StatusCode.UNAVAILABLE, "server shutting down")


async def authenticate(
    stream: Stream, hello_token: str, check: Callable[[str | None], Principal]
) -> Principal:
    """The Hello token's principal, or the call metadata's; a failure ends the RPC (spec 07 §2)."""
    header = _credentials(hello_token, stream.context)
    if header is None:
        await abort(stream.context, grpc.StatusCode.UNAUTHENTICATED, "missing token")
    try:
        return check(header)
    except Unauthenticated as exc:
        await abort(stream.context, grpc.StatusCode.UNAUTHENTICATED, f"auth failed: {exc.message}")
    except Forbidden as exc:
        await abort(stream.context, grpc.StatusCode.PERMISSION_DENIED, exc.message)


def _credentials(hello_token: str, context: grpc.aio.ServicerContext) -> str | None:
    """An Authorization value: the Hello token wins; `authorization` metadata is a codeq extension."""
    token = hello_token.strip()
    if token:
        return f"Bearer {token}"
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value)
    return None


def fold_acks(events: list[Message], single: str, batch: Callable[[list[Any]], Message]) -> list[Message]:
    """Replace the `single` acks among `events` by one batch event holding them all.

    Acks are matched to requests by seq or task id, never by position, so folding them
    changes nothing a client can rely on, and both codeQ's SDKs and ours read the batch
    forms.
    """
    acks = [getattr(event, single) for event in events if event.WhichOneof("event") == single]
    if len(acks) < 2:
        return events
    rest = [event for event in events if event.WhichOneof("event") != single]
    return [*rest, batch(acks)]
