"""The producer stream (spec 07 §3): Hello, then pipelined creates acknowledged by seq."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from codeq.auth.principal import Principal
from codeq.core.errors import CodeqError, InvalidInput
from codeq.core.model import Task
from codeq.service.tasks import NewTask, TaskService
from codeq.transport.grpc.convert import new_task, parse
from codeq.transport.grpc.errors import abort, code_name, error_text
from codeq.transport.grpc.servicer import StreamServicer, authenticate, fold_acks
from codeq.transport.grpc.stream import Handler, Stream
from codeq.wire.pb import producerpb_pb2 as pb

SERVICE = "producerpb.ProducerStream"
_INVALID = code_name(grpc.StatusCode.INVALID_ARGUMENT)
_PRECONDITION = code_name(grpc.StatusCode.FAILED_PRECONDITION)


class ProducerServicer(StreamServicer):
    KIND = "producer"

    def error_event(self, code: str, message: str) -> Message:
        return pb.ServerEvent(error=pb.ServerError(code=code, message=message))

    def coalesce(self, events: list[Message]) -> list[Message]:
        return fold_acks(
            events, "create_ack", lambda acks: pb.ServerEvent(create_ack_batch=pb.CreateAckBatch(acks=acks))
        )

    async def open_session(self, stream: Stream, raw: bytes) -> tuple[Principal, Handler]:
        event = parse(pb.ProducerEvent, raw)
        if event is None or event.WhichOneof("event") != "hello":
            await abort(stream.context, grpc.StatusCode.FAILED_PRECONDITION, "first event must be Hello")
        principal = await authenticate(stream, event.hello.token, self.services.auth.producer)
        await self.admit(stream)
        ack = pb.HelloAck(tenant_id=principal.tenant, subject=principal.subject)
        await stream.send(pb.ServerEvent(hello_ack=ack))
        return principal, _ProducerSession(self.services.tasks, stream, principal).handle


class SeenSeqs:
    """The seqs one stream has used, so a second use is refused (spec 07 gap 7).

    Held as a floor (every seq up to it was seen) plus the seqs seen above it: a client
    numbering its creates 1, 2, 3… (ours and codeQ's SDKs) costs only its reordering window.
    Seq 0 is proto3's "not set" and is not tracked.
    """

    def __init__(self) -> None:
        self._floor = 0
        self._above: set[int] = set()

    def first_use(self, seq: int) -> bool:
        """Record `seq`; False when this stream used it before."""
        if seq == 0:
            return True
        if seq <= self._floor or seq in self._above:
            return False
        self._above.add(seq)
        while self._floor + 1 in self._above:
            self._floor += 1
            self._above.discard(self._floor)
        return True


class _ProducerSession:
    def __init__(self, tasks: TaskService, stream: Stream, principal: Principal) -> None:
        self._tasks = tasks
        self._stream = stream
        self._principal = principal
        self._seen = SeenSeqs()

    async def handle(self, raw: bytes) -> None:
        event = parse(pb.ProducerEvent, raw)
        if event is None:
            await self._stream.send_error(_INVALID, "malformed-event")
            return
        match event.WhichOneof("event"):
            case "create":
                await self._create(event.create)
            case "create_batch":
                await self._create_batch(event.create_batch)
            case "hello":
                await self._stream.send_error(_PRECONDITION, "already-authenticated")
            case _:
                await self._stream.send_error(_INVALID, "unknown-event")

    async def _create(self, create: pb.CreateTask) -> None:
        if not self._seen.first_use(create.seq):
            await self._stream.send(pb.ServerEvent(create_ack=_duplicate(create.seq)))
            return
        try:
            task, _ = await self._tasks.create(self._principal, new_task(create))
        except CodeqError as exc:
            if self._stream.redirect(exc, "producer"):
                return
            ack = _ack(create.seq, exc)
        else:
            ack = _ack(create.seq, (task, False))
        await self._stream.send(pb.ServerEvent(create_ack=ack))

    async def _create_batch(self, batch: pb.CreateTaskBatch) -> None:
        """One ack batch in input order; an empty batch gets an empty answer (spec 07 gap 7)."""
        specs: list[NewTask | CodeqError] = []
        for create in batch.tasks:
            if not self._seen.first_use(create.seq):
                specs.append(DuplicateSeq(create.seq))
                continue
            try:
                specs.append(new_task(create))
            except CodeqError as exc:
                specs.append(exc)
        # The service caps a batch (REST's limit); a stream batch has no cap of its own, only
        # the message size, so it is created in service-sized chunks.
        size = self._tasks.policy.max_batch_size
        outcomes: list[tuple[Task, bool] | CodeqError] = []
        for start in range(0, len(specs), size):
            chunk = specs[start : start + size]
            try:
                outcomes += await self._tasks.create_many(self._principal, chunk)
            except CodeqError as exc:
                outcomes += [exc] * len(chunk)
        acks = [_ack(create.seq, outcome) for create, outcome in zip(batch.tasks, outcomes, strict=True)]
        if any(isinstance(o, CodeqError) and self._stream.redirect(o, "producer") for o in outcomes):
            return
        await self._stream.send(pb.ServerEvent(create_ack_batch=pb.CreateAckBatch(acks=acks)))


class DuplicateSeq(InvalidInput):
    """A create whose seq this stream already used: refused, so no second task is made."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"duplicate seq {seq} on this stream")


def _duplicate(seq: int) -> pb.CreateAck:
    return _ack(seq, DuplicateSeq(seq))


def _ack(seq: int, outcome: tuple[Task, bool] | CodeqError) -> pb.CreateAck:
    if isinstance(outcome, CodeqError):
        return pb.CreateAck(seq=seq, ok=False, error_message=error_text(outcome))
    return pb.CreateAck(seq=seq, ok=True, task_id=outcome[0].id)


def _create_ack_batch(acks: list[pb.CreateAck]) -> Message:
    return pb.ServerEvent(create_ack_batch=pb.CreateAckBatch(acks=acks))
