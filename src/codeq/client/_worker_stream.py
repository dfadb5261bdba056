"""The worker stream (spec 07 §4) for concurrent callers: Readys answered in order, acks by task id."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from codeq.client import _pb
from codeq.client._coalesce import Coalescer
from codeq.client._errors import CodeqError
from codeq.client._models import Result, ResultSpec, Task
from codeq.client._stream import Dial, Stream
from codeq.wire.pb import workerpb_pb2 as pb

log = logging.getLogger("codeq.client.stream")

MAX_READY_COUNT = 256  # the server's cap on Ready.count (spec 07 gap 2)
_READY = "ready"
_SERVED_OTHERS: list[pb.Task] = []  # a claim's answer when its Ready's tasks went to others


@dataclass(frozen=True, slots=True)
class _Claim:
    commands: tuple[str, ...]
    lease_seconds: int
    wait: int
    count: int


# Which waiter each kind of ack answers: (kind, task id) keys, oldest first.
_ACKS = {
    "result_ack": "result",
    "heartbeat_ack": "heartbeat",
    "nack_ack": "nack",
    "abandon_ack": "abandon",
}


class WorkerStream(Stream):
    """Claims and reports over one worker stream.

    A delivery answers the oldest Ready still waiting (deliveries name no Ready, and the server
    answers each Ready exactly once: with tasks, or an empty TaskBatch when none came). Tasks
    delivered to a caller that gave up, or beyond what it asked for, are kept for the next claim
    and handed back at `aclose()` if nobody takes them.
    """

    def __init__(
        self, dial: Dial, token: str, *, timeout: float, max_message_bytes: int, worker_id: str = ""
    ) -> None:
        super().__init__(dial, timeout, max_message_bytes)
        self.worker_id = ""  # the lease owner the server named in its HelloAck
        self._token = token
        self._instance = worker_id  # the instance asked for in every Hello; "": the token's subject
        self._spare: list[pb.Task] = []
        # Claims made in one loop turn travel as one Ready; tasks whose claimer gave up are kept.
        self._claims: Coalescer[_Claim] = Coalescer(self._send_readys, on_orphan=self._keep_spare)
        # Single results reported in one loop turn travel as one ResultBatch.
        self._results: Coalescer[_pb.PreparedResult] = Coalescer(self._send_result_events)

    def hello(self) -> Message:
        return pb.WorkerEvent(hello=pb.Hello(token=self._token, worker_id=self._instance))

    def accept_hello(self, event: Message) -> None:
        self.worker_id = self.hello_ack(event).worker_id

    def dispatch(self, event: Message) -> None:
        assert isinstance(event, pb.ServerEvent)
        kind = event.WhichOneof("event")
        if kind == "task":
            self._deliver([event.task.task])
        elif kind == "task_batch":
            self._deliver(list(event.task_batch.tasks))
        elif kind == "result_ack_batch":
            for ack in event.result_ack_batch.acks:
                self.waiters.resolve(("result", ack.task_id), ack)
        elif kind in _ACKS:
            ack = getattr(event, kind)
            self.waiters.resolve((_ACKS[kind], ack.task_id), ack)
        elif kind == "error":
            self._server_error(event.error)

    # -- claims --------------------------------------------------------------------------

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        count = max(1, min(count, MAX_READY_COUNT))
        # A Ready cannot ask for no wait (0 means the server's default): 1 s is the shortest.
        claim = _Claim(tuple(commands), lease_seconds, max(wait_seconds, 1), count)
        while True:
            if self._spare:
                tasks, self._spare = self._spare[:count], self._spare[count:]
                return [_pb.task_from_pb(task) for task in tasks]
            tasks = await self._claims.submit(claim)
            if tasks is not _SERVED_OTHERS:
                return [_pb.task_from_pb(task) for task in tasks]

    def _keep_spare(self, tasks: list[pb.Task]) -> None:
        self._spare += tasks

    async def _send_readys(self, claims: list[_Claim]) -> list[Any]:
        """One Ready for all the claims made in one loop turn (each Ready and each answer is a
        message, the costly part); the tasks are shared out in order. Claims left without a
        task while others got some ask again; when nothing came at all, all get nothing."""
        answers: list[Any] = [[] for _ in claims]
        groups: dict[tuple[tuple[str, ...], int, int], list[int]] = {}
        for index, claim in enumerate(claims):
            groups.setdefault((claim.commands, claim.lease_seconds, claim.wait), []).append(index)
        for (commands, lease, wait), indexes in groups.items():
            total = min(sum(claims[i].count for i in indexes), MAX_READY_COUNT)
            ready = pb.Ready(commands=commands, lease_seconds=lease, count=total, wait_seconds=wait)
            (delivered,) = await self.exchange(pb.WorkerEvent(ready=ready), [_READY], wait)
            position = 0
            for i in indexes:
                share = delivered[position : position + claims[i].count]
                position += len(share)
                answers[i] = share if share or not delivered else _SERVED_OTHERS
            self._spare += delivered[position:]
        return answers

    def _deliver(self, tasks: list[pb.Task]) -> None:
        if not self.waiters.resolve(_READY, tasks) and tasks:
            self._spare += tasks  # its Ready's caller gave up, but the tasks are leased to us now

    def _server_error(self, error: pb.ServerError) -> None:
        # A ServerError names no request (spec 07 §6). The ones a well-behaved client meets
        # answer a Ready (command not allowed, claim failure, missing claim scope): the oldest.
        if not self.waiters.reject(_READY, _pb.error_from_code(error.code, error.message)):
            log.warning("worker stream error: %s %s", error.code, error.message)

    # -- reports -------------------------------------------------------------------------

    async def heartbeat(self, task_id: str, extend_seconds: int, lease_token: int = 0) -> None:
        beat = pb.Heartbeat(task_id=task_id, extend_seconds=extend_seconds, lease_token=lease_token)
        await self._report(pb.WorkerEvent(heartbeat=beat), "heartbeat", task_id)

    async def nack(self, task_id: str, delay_seconds: int | None, reason: str, lease_token: int = 0) -> bool:
        # On the stream 0 means the server's backoff (spec 07 §4.1): "at once" is 1 s here.
        delay = 0 if delay_seconds is None else max(delay_seconds, 1)
        nack = pb.Nack(task_id=task_id, delay_seconds=delay, reason=reason, lease_token=lease_token)
        ack = await self._report(pb.WorkerEvent(nack=nack), "nack", task_id)
        return bool(ack.dlq)

    async def abandon(self, task_id: str, lease_token: int = 0) -> None:
        event = pb.WorkerEvent(abandon=pb.Abandon(task_id=task_id, lease_token=lease_token))
        await self._report(event, "abandon", task_id)

    async def submit_result(self, item: ResultSpec) -> Result:
        ack = await self._results.submit(_pb.prepare_result(item))
        if isinstance(ack, CodeqError):
            raise ack
        if not ack.ok:
            raise _pb.ack_error(ack.error_message)
        return _pb.accepted_result(item)

    async def _send_result_events(self, results: list[_pb.PreparedResult]) -> list[Any]:
        return await self.send_packed(results, self._send_results, _pb.result_size)

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result | CodeqError]:
        """One ResultBatch per message-sized group; each item is acknowledged alone."""
        acks = await self._send_result_events([_pb.prepare_result(item) for item in items])
        now = datetime.now(UTC)
        outcomes: list[Result | CodeqError] = []
        for ack, item in zip(acks, items, strict=True):
            if isinstance(ack, CodeqError):
                outcomes.append(ack)
            elif ack.ok:
                outcomes.append(_pb.accepted_result(item, now))
            else:
                outcomes.append(_pb.ack_error(ack.error_message))
        return outcomes

    async def _send_results(self, group: Sequence[_pb.PreparedResult]) -> list[Any]:
        keys = [("result", item.task_id) for item, _ in group]
        return await self.exchange(_pb.result_batch_event(group), keys)

    async def _report(self, event: pb.WorkerEvent, kind: str, task_id: str) -> Any:
        (ack,) = await self.exchange(event, [(kind, task_id)])
        if not ack.ok:
            raise _pb.ack_error(ack.error_message)
        return ack

    async def aclose(self) -> None:
        await self._hand_back_spare()
        await super().aclose()
        # A Ready its caller gave up on may be answered while the stream closes (the server
        # delivers a claim that landed just before): those tasks go back on a stream of their own.
        if self._spare:
            await self._hand_back_spare()
            await super().aclose()

    async def _hand_back_spare(self) -> None:
        spare, self._spare = self._spare, []
        for task in spare:  # best effort: otherwise they come back only when their leases expire
            with contextlib.suppress(CodeqError):
                await self.abandon(task.id, task.lease_token)
