"""The worker stream (spec 07 §4): Hello, then Ready for tasks and an ack for every report."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import Message

from codeq.auth.principal import Principal
from codeq.core.errors import CodeqError, InvalidInput
from codeq.core.model import ResultRecord, Task
from codeq.service.container import Services
from codeq.service.results import NewResult
from codeq.transport.grpc.convert import new_result, parse, task_message
from codeq.transport.grpc.errors import abort, code_name, error_text, server_error
from codeq.transport.grpc.servicer import StreamLimits, StreamServicer, authenticate, fold_acks
from codeq.transport.grpc.stream import Handler, Stream
from codeq.wire.pb import workerpb_pb2 as pb

SERVICE = "workerpb.WorkerStream"
_INVALID = code_name(grpc.StatusCode.INVALID_ARGUMENT)
_PRECONDITION = code_name(grpc.StatusCode.FAILED_PRECONDITION)
# Room for the ServerEvent and TaskBatch framing around the tasks of one delivery.
_FRAMING_BYTES = 1024

log = logging.getLogger("codeq.grpc")


class WorkerServicer(StreamServicer):
    KIND = "worker"

    def error_event(self, code: str, message: str) -> Message:
        return pb.ServerEvent(error=pb.ServerError(code=code, message=message))

    def coalesce(self, events: list[Message]) -> list[Message]:
        return fold_acks(
            events, "result_ack", lambda acks: pb.ServerEvent(result_ack_batch=pb.ResultAckBatch(acks=acks))
        )

    async def open_session(self, stream: Stream, raw: bytes) -> tuple[Principal, Handler]:
        event = parse(pb.WorkerEvent, raw)
        if event is None or event.WhichOneof("event") != "hello":
            await abort(stream.context, grpc.StatusCode.FAILED_PRECONDITION, "first event must be Hello")
        principal = await authenticate(stream, event.hello.token, self.services.auth.worker)
        try:
            principal = principal.instance(event.hello.worker_id)
        except InvalidInput:
            await abort(stream.context, grpc.StatusCode.INVALID_ARGUMENT, "invalid worker_id")
        await self.admit(stream)
        await stream.send(
            pb.ServerEvent(hello_ack=pb.HelloAck(worker_id=principal.subject, tenant_id=principal.tenant))
        )
        return principal, _WorkerSession(self.services, self.limits, stream, principal).handle


class _WorkerSession:
    def __init__(
        self, services: Services, limits: StreamLimits, stream: Stream, principal: Principal
    ) -> None:
        self._tasks = services.tasks
        self._results = services.results
        self._limits = limits
        self._stream = stream
        self._principal = principal

    async def handle(self, raw: bytes) -> None:
        event = parse(pb.WorkerEvent, raw)
        if event is None:
            await self._stream.send_error(_INVALID, "malformed-event")
            return
        match event.WhichOneof("event"):
            case "ready":
                await self._ready(event.ready)
            case "result":
                await self._result(event.result)
            case "result_batch":
                await self._result_batch(event.result_batch)
            case "nack":
                await self._nack(event.nack)
            case "heartbeat":
                await self._heartbeat(event.heartbeat)
            case "abandon":
                await self._abandon(event.abandon)
            case "hello":
                await self._stream.send_error(_PRECONDITION, "already-authenticated")
            case _:
                await self._stream.send_error(_INVALID, "unknown-event")

    # -- Ready ---------------------------------------------------------------------------

    async def _ready(self, ready: pb.Ready) -> None:
        """Always answered (spec 07 gap 3): the tasks, or an empty TaskBatch when none came."""
        cap = self._limits.max_ready_count
        if ready.count > cap:
            await self._stream.send_error(_INVALID, f"count exceeds maximum of {cap}")
            return
        # Waiting is event-driven inside the service, not the reference's 50 ms polling.
        wait = ready.wait_seconds if ready.wait_seconds > 0 else self._limits.ready_wait_seconds
        claim = self._tasks.claim(
            self._principal, list(ready.commands) or None, ready.lease_seconds, wait, max(ready.count, 1)
        )
        try:
            tasks = await self._stream.unless_closing(claim) or []
        except CodeqError as exc:
            if not self._stream.redirect(exc, "worker"):
                await self._stream.send_error(*server_error(exc))
            return
        messages = await self._fit(tasks)
        if ready.count <= 1 and messages:
            sent = await self._stream.send(pb.ServerEvent(task=pb.TaskAssignment(task=messages[0])))
        else:
            sent = await self._stream.send(pb.ServerEvent(task_batch=pb.TaskBatch(tasks=messages)))
        if not sent:  # not delivered: back to the queue now rather than at lease expiry
            for task in tasks[: len(messages)]:
                await self._give_back(task)

    async def _fit(self, tasks: list[Task]) -> list[pb.Task]:
        """The tasks that fit one message; the rest go back to the queue undelivered."""
        budget = self._limits.max_message_bytes - _FRAMING_BYTES
        messages: list[pb.Task] = []
        for position, task in enumerate(tasks):
            message = task_message(task)
            budget -= message.ByteSize() + 8  # the field's tag and length prefix
            if messages and budget < 0:
                for extra in tasks[position:]:
                    await self._give_back(extra)
                break
            messages.append(message)
        return messages

    async def _give_back(self, task: Task) -> None:
        """Return a claimed task that was not delivered, without counting the delivery."""
        try:
            await self._tasks.abandon(self._principal, task.id, task.lease_epoch)
        except CodeqError as exc:  # e.g. no abandon scope: the lease then expires as usual
            log.warning("could not return undelivered task %s: %s", task.id, exc.message)

    # -- reports -------------------------------------------------------------------------

    async def _result(self, result: pb.Result) -> None:
        try:
            await self._results.submit(self._principal, new_result(result))
        except CodeqError as exc:
            if self._stream.redirect(exc, "worker"):
                return
            ack = pb.ResultAck(task_id=result.task_id, ok=False, error_message=error_text(exc))
        else:
            ack = pb.ResultAck(task_id=result.task_id, ok=True)
        await self._stream.send(pb.ServerEvent(result_ack=ack))

    async def _result_batch(self, batch: pb.ResultBatch) -> None:
        specs: list[NewResult | CodeqError] = []
        for result in batch.results:
            try:
                specs.append(new_result(result))
            except CodeqError as exc:
                specs.append(exc)
        size = self._results.policy.max_batch_size  # see the producer's batches
        outcomes: list[ResultRecord | CodeqError] = []
        for start in range(0, len(specs), size):
            chunk = specs[start : start + size]
            try:
                outcomes += await self._results.submit_many(self._principal, chunk)
            except CodeqError as exc:
                if self._stream.redirect(exc, "worker"):
                    return
                outcomes += [exc] * len(chunk)
        acks = [
            pb.ResultAck(task_id=r.task_id, ok=False, error_message=error_text(o))
            if isinstance(o, CodeqError)
            else pb.ResultAck(task_id=r.task_id, ok=True)
            for r, o in zip(batch.results, outcomes, strict=True)
        ]
        await self._stream.send(pb.ServerEvent(result_ack_batch=pb.ResultAckBatch(acks=acks)))

    async def _nack(self, nack: pb.Nack) -> None:
        # delay_seconds <= 0 keeps the reference's meaning on the stream: the server's backoff.
        delay = nack.delay_seconds if nack.delay_seconds > 0 else None
        try:
            applied, dead = await self._tasks.nack(
                self._principal, nack.task_id, delay, nack.reason, nack.lease_token
            )
        except CodeqError as exc:
            if self._stream.redirect(exc, "worker"):
                return
            ack = pb.NackAck(task_id=nack.task_id, ok=False, error_message=error_text(exc))
        else:
            ack = pb.NackAck(task_id=nack.task_id, ok=True, applied_delay_seconds=applied, dlq=dead)
        await self._stream.send(pb.ServerEvent(nack_ack=ack))

    async def _heartbeat(self, heartbeat: pb.Heartbeat) -> None:
        extend = heartbeat.extend_seconds if heartbeat.extend_seconds > 0 else None
        try:
            await self._tasks.heartbeat(self._principal, heartbeat.task_id, extend, heartbeat.lease_token)
        except CodeqError as exc:
            if self._stream.redirect(exc, "worker"):
                return
            ack = pb.HeartbeatAck(task_id=heartbeat.task_id, ok=False, error_message=error_text(exc))
        else:
            ack = pb.HeartbeatAck(task_id=heartbeat.task_id, ok=True)
        await self._stream.send(pb.ServerEvent(heartbeat_ack=ack))

    async def _abandon(self, abandon: pb.Abandon) -> None:
        try:
            await self._tasks.abandon(self._principal, abandon.task_id, abandon.lease_token)
        except CodeqError as exc:
            if self._stream.redirect(exc, "worker"):
                return
            ack = pb.AbandonAck(task_id=abandon.task_id, ok=False, error_message=error_text(exc))
        else:
            ack = pb.AbandonAck(task_id=abandon.task_id, ok=True)
        await self._stream.send(pb.ServerEvent(abandon_ack=ack))


def _result_ack_batch(acks: list[pb.ResultAck]) -> Message:
    return pb.ServerEvent(result_ack_batch=pb.ResultAckBatch(acks=acks))
