"""The gRPC stream transport: producer and worker streams, with HTTP for the reads streams lack."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from codeq.client import _errors as e
from codeq.client._http import HttpTransport
from codeq.client._models import Result, ResultSpec, Task, TaskSpec
from codeq.client._producer_stream import ProducerStream
from codeq.client._stream import Call, Dial
from codeq.client._tls import ClientTls
from codeq.client._transport import GRPC_SCHEME, GRPCS_SCHEME
from codeq.client._worker_stream import WorkerStream
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb

PRODUCER_METHOD = "/producerpb.ProducerStream/Stream"
WORKER_METHOD = "/workerpb.WorkerStream/Stream"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the server's default per-message limit (spec 07 gap 10)
LEADER_METADATA = "codeq-leader"  # trailing metadata naming the leader's stream address
REBALANCE_METADATA = "codeq-rebalance"  # trailing metadata: connect again, to another process
REBALANCE_REDIALS = 32  # fresh connections tried at once before the refused one is used again
# The server sets the limits; a delivery it sends must never be refused here. Each channel
# dials a connection of its own: gRPC would otherwise share one between the channels of a
# process that name the same address, so a stream refused to be rebalanced would come back
# on the connection it was refused on.
_OPTIONS = (
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
)
_LEADER_IN_TEXT = re.compile(r"leader:?\s*(grpcs?://[^\s)]+)")
_BY_STATUS: dict[grpc.StatusCode, type[e.CodeqError]] = {
    grpc.StatusCode.UNAUTHENTICATED: e.Unauthorized,
    grpc.StatusCode.PERMISSION_DENIED: e.Forbidden,
    grpc.StatusCode.INVALID_ARGUMENT: e.BadRequest,
    grpc.StatusCode.FAILED_PRECONDITION: e.BadRequest,
    grpc.StatusCode.RESOURCE_EXHAUSTED: e.PayloadTooLarge,
}


class GrpcTransport:
    """Talks to codeq's producer and worker streams at `grpc://host:port`.

    Each kind of stream is opened on first use and shared by every concurrent caller; when one
    breaks, the calls waiting on it fail with `ConnectionFailed` (the SDK's retries take over)
    and the next call opens a new one. A stream ended as not-leader with the leader's address
    is reopened there. `get_task` and `get_result` go to the HTTP API at `http_url`.
    `timeout` bounds the wait for each answer (a claim's wait comes on top).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        http_url: str | None = None,
        timeout: float = 10.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        worker_id: str | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        credentials = None
        if url.startswith(GRPCS_SCHEME):
            credentials = grpc.ssl_channel_credentials(*ClientTls.from_environment().grpc_pem())
        self._target = _Target(_address(url), credentials)
        self._http = HttpTransport(http_url, token, timeout=timeout) if http_url else None
        limits: dict[str, Any] = {"timeout": timeout, "max_message_bytes": max_message_bytes}
        producer = _dialer(self._target, PRODUCER_METHOD, ppb.ServerEvent, token)
        worker = _dialer(self._target, WORKER_METHOD, wpb.ServerEvent, token)
        self._producer = ProducerStream(producer, token, **limits)
        self._worker = WorkerStream(worker, token, worker_id=worker_id or "", **limits)

    @property
    def base_url(self) -> str:
        return self._url

    async def create(self, spec: TaskSpec) -> Task:
        return await self._producer.create(spec)

    async def create_batch(self, specs: Sequence[TaskSpec]) -> list[Task | e.CodeqError]:
        return await self._producer.create_batch(specs)

    async def get_task(self, task_id: str) -> Task:
        return await self._reads().get_task(task_id)

    async def get_result(self, task_id: str, wait_seconds: int) -> Result:
        return await self._reads().get_result(task_id, wait_seconds)

    async def claim(self, commands: Sequence[str], lease_seconds: int, wait_seconds: int) -> Task | None:
        tasks = await self._worker.claim_many(commands, lease_seconds, wait_seconds, 1)
        return tasks[0] if tasks else None

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        return await self._worker.claim_many(commands, lease_seconds, wait_seconds, count)

    async def heartbeat(self, task_id: str, extend_seconds: int, lease_token: int = 0) -> None:
        await self._worker.heartbeat(task_id, extend_seconds, lease_token)

    async def nack(self, task_id: str, delay_seconds: int | None, reason: str, lease_token: int = 0) -> bool:
        return await self._worker.nack(task_id, delay_seconds, reason, lease_token)

    async def abandon(self, task_id: str, lease_token: int = 0) -> None:
        await self._worker.abandon(task_id, lease_token)

    async def submit_result(
        self, task_id: str, status: str, result: Any, error: str, lease_token: int = 0
    ) -> Result:
        return await self._worker.submit_result(
            ResultSpec(task_id=task_id, status=status, result=result, error=error, lease_token=lease_token)
        )

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result | e.CodeqError]:
        return await self._worker.submit_results(items)

    async def aclose(self) -> None:
        await self._producer.aclose()
        await self._worker.aclose()
        if self._http is not None:
            await self._http.aclose()

    def _reads(self) -> HttpTransport:
        if self._http is None:
            raise e.CodeqError("reading tasks and results needs http_url: the streams cannot read")
        return self._http


class _Target:
    """Where the streams connect: the configured address until a not-leader answer names another."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.address = address
        # TLS or not holds for the whole cluster: a leader it is sent to is dialled the same way.
        self.credentials = credentials

    def channel(self) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(self.address, options=_OPTIONS)
        return grpc.aio.secure_channel(self.address, self.credentials, options=_OPTIONS)


class _GrpcCall:
    """One stream RPC on its own channel, so a reconnect always dials afresh instead of waiting
    out a broken channel's reconnect backoff.

    A node running a process per shard may refuse a stream right after its Hello so that it
    lands on a less loaded process (UNAVAILABLE with `codeq-rebalance` in the trailing
    metadata, nothing applied): the Hello is then sent again at once on a fresh channel (a new
    connection, which the kernel hashes anew), up to `REBALANCE_REDIALS` times, and then once
    more on the same channel, which the server takes (it refuses a connection only once).
    """

    def __init__(self, open_call: Callable[[grpc.aio.Channel], Any], target: _Target) -> None:
        self._open_call = open_call
        self._target = target
        self._channel = target.channel()
        self._call = open_call(self._channel)
        self._unanswered: list[Message | bytes] | None = []  # written before the server's first answer
        self._redials = 0

    async def write(self, event: Message | bytes) -> None:
        if self._unanswered is not None:
            self._unanswered.append(event)
        await self._send(event)

    async def _send(self, event: Message | bytes) -> None:
        try:
            await self._call.write(event)
        except grpc.aio.AioRpcError as exc:  # the stream ended before this event went out
            error = _status_error(exc, self._target)
            if isinstance(error, e.ConnectionFailed | e.Unavailable):
                raise e.ConnectionFailed(error.message, request_sent=False) from exc
            raise error from exc
        except (grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            raise e.ConnectionFailed(f"stream write failed: {exc!r}", request_sent=False) from exc

    async def read(self) -> Message | None:
        while True:
            try:
                event = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                if self._unanswered is not None and self._redials <= REBALANCE_REDIALS and _rebalanced(exc):
                    await self._redial()
                    continue
                raise _status_error(exc, self._target) from exc
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._call.cancelled() and task is not None and task.cancelling() == 0:
                    raise e.ConnectionFailed("the stream was cancelled", request_sent=True) from None
                raise
            self._unanswered = None  # answered: from here on a stream that ends is broken
            return None if event is grpc.aio.EOF else event

    async def _redial(self) -> None:
        """Open the stream again and resend what the refused one carried (its Hello)."""
        self._redials += 1
        if self._redials <= REBALANCE_REDIALS:
            await self._channel.close()
            self._channel = self._target.channel()
        self._call = self._open_call(self._channel)
        for event in self._unanswered or ():
            await self._send(event)

    async def done_writing(self) -> None:
        try:
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            raise e.ConnectionFailed(f"stream half-close failed: {exc!r}", request_sent=False) from exc

    def cancel(self) -> None:
        self._call.cancel()

    async def aclose(self) -> None:
        self._call.cancel()
        await self._channel.close()


def _dialer(target: _Target, method: str, reply: type[Message], token: str) -> Dial:
    metadata = (("authorization", f"Bearer {token}"),)  # the token is in the Hello too

    def open_call(channel: grpc.aio.Channel) -> Any:
        open_stream = channel.stream_stream(
            method, request_serializer=_serialize, response_deserializer=reply.FromString
        )
        return open_stream(metadata=metadata)

    async def dial() -> Call:
        return _GrpcCall(open_call, target)

    return dial


def _rebalanced(exc: grpc.aio.AioRpcError) -> bool:
    """A stream refused before its HelloAck so that the client connects to another process."""
    if exc.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    return any(key == REBALANCE_METADATA for key, _ in exc.trailing_metadata() or ())


def _status_error(exc: grpc.aio.AioRpcError, target: _Target) -> e.CodeqError:
    """The SDK's error for the status that ended a stream."""
    code, details = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE:
        leader = _leader(exc.trailing_metadata(), details)
        if leader:
            # The server ends a stream as not-leader only after answering every event it
            # applied: whatever is still unanswered was not applied, and may go to the leader.
            target.address = leader
            return e.ConnectionFailed(
                f"{details} (reconnecting to the leader at {leader})", request_sent=False
            )
    cls = _BY_STATUS.get(code)
    if cls is not None:
        return cls(details or code.name)
    return e.ConnectionFailed(f"stream ended: {code.name} {details}".strip(), request_sent=True)


def _leader(metadata: Any, details: str) -> str:
    """A not-leader answer's leader address: trailing metadata, else a `grpc(s)://` URL in the text."""
    for key, value in metadata or ():
        if key == LEADER_METADATA and value:
            return _address(str(value))
    found = _LEADER_IN_TEXT.search(details)
    return _address(found.group(1)) if found else ""


def _address(url: str) -> str:
    address = url.removeprefix(GRPC_SCHEME).removeprefix(GRPCS_SCHEME).rstrip("/")
    if not address or "/" in address:
        raise ValueError(f"expected {GRPC_SCHEME}host:port or {GRPCS_SCHEME}host:port, got {url!r}")
    return address


def _serialize(event: Message | bytes) -> bytes:
    # The streams encode a batch once, to check its size, and write those bytes.
    return event if isinstance(event, bytes) else event.SerializeToString()
