"""The producer stream (spec 07 §3) for concurrent callers: creates pipelined, acks matched by seq."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from codeq.client import _pb
from codeq.client._coalesce import Coalescer
from codeq.client._errors import BatchItemError, CodeqError
from codeq.client._models import Task, TaskSpec
from codeq.client._stream import Dial, Stream
from codeq.wire.pb import producerpb_pb2 as pb

log = logging.getLogger("codeq.client.stream")


class ProducerStream(Stream):
    """Creates over one producer stream. Every create gets a seq unique for this object's life,
    so an ack can never be matched to a create of another stream."""

    def __init__(self, dial: Dial, token: str, *, timeout: float, max_message_bytes: int) -> None:
        super().__init__(dial, timeout, max_message_bytes)
        self.tenant_id = ""
        self._token = token
        self._seqs = itertools.count(1)
        # Single creates made in one loop turn travel as one CreateTaskBatch.
        self._creates: Coalescer[_pb.PreparedCreate] = Coalescer(self._send_creates)

    def hello(self) -> Message:
        return pb.ProducerEvent(hello=pb.Hello(token=self._token))

    def accept_hello(self, event: Message) -> None:
        self.tenant_id = self.hello_ack(event).tenant_id

    def dispatch(self, event: Message) -> None:
        assert isinstance(event, pb.ServerEvent)
        kind = event.WhichOneof("event")
        if kind == "create_ack":
            self._ack(event.create_ack)
        elif kind == "create_ack_batch":
            for ack in event.create_ack_batch.acks:
                self._ack(ack)
        elif kind == "error":
            # Not tied to any create (spec 07 gap 7): the creates it concerns time out.
            log.warning("producer stream error: %s %s", event.error.code, event.error.message)

    async def create(self, spec: TaskSpec) -> Task:
        ack = await self._creates.submit(_pb.prepare_create(spec, next(self._seqs)))
        if isinstance(ack, CodeqError):
            raise ack
        if not ack.ok:
            raise _pb.ack_error(ack.error_message)
        return _pb.created_task(spec, ack.task_id, self.tenant_id)

    async def _send_creates(self, creates: list[_pb.PreparedCreate]) -> list[Any]:
        return await self.send_packed(creates, self._send_batch, _pb.create_size)

    async def create_batch(self, specs: Sequence[TaskSpec]) -> list[Task | CodeqError]:
        """One CreateTaskBatch per message-sized group; acks come back in input order."""
        acks = await self._send_creates([_pb.prepare_create(spec, next(self._seqs)) for spec in specs])
        now = datetime.now(UTC)
        return [
            _outcome(ack, spec, index, self.tenant_id, now)
            for index, (ack, spec) in enumerate(zip(acks, specs, strict=True))
        ]

    async def _send_batch(self, group: Sequence[_pb.PreparedCreate]) -> list[Any]:
        return await self.exchange(_pb.create_batch_event(group), [seq for _, seq, _ in group])

    def _ack(self, ack: pb.CreateAck) -> None:
        if not self.waiters.resolve(ack.seq, ack):
            log.debug("create ack for seq %d came after its caller gave up", ack.seq)


def _outcome(
    ack: pb.CreateAck | CodeqError, spec: TaskSpec, index: int, tenant_id: str, now: datetime
) -> Task | CodeqError:
    if isinstance(ack, CodeqError):
        return BatchItemError(ack.message, index)
    if not ack.ok:
        return BatchItemError(ack.error_message or "rejected", index)
    return _pb.created_task(spec, ack.task_id, tenant_id, now)
