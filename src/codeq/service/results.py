"""Worker results: submit one or many, and read a task's result (optionally waiting for it)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

from codeq.auth.principal import SCOPE_RESULT, Principal
from codeq.core.clock import Clock
from codeq.core.errors import CodeqError, InvalidInput, NotFound, NotLeader, PayloadTooLarge, TaskCancelled
from codeq.core.model import ResultRecord, Status, Task
from codeq.engine import commands as c
from codeq.engine.outcomes import Completed
from codeq.engine.shards import shard_of
from codeq.service.node import Node, refused_everywhere, submit_batch
from codeq.service.policy import Policy

_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(slots=True)
class ArtifactIn:
    name: str
    url: str = ""
    content_base64: str = ""


@dataclass(slots=True)
class NewResult:
    """A submitted result; `result` is the raw JSON text of the result object, or None."""

    task_id: str
    status: str
    result: str | None = None
    error: str = ""
    artifacts: list[ArtifactIn] = field(default_factory=list)
    lease_token: int = 0  # the claim's lease token; 0: none presented (owner check only)


class ResultService:
    def __init__(self, node: Node, clock: Clock, policy: Policy) -> None:
        self.node = node
        self.clock = clock
        self.policy = policy

    async def submit(self, principal: Principal, spec: NewResult) -> ResultRecord:
        principal.require_scope(SCOPE_RESULT)
        command = self._complete_command(principal, spec, self.clock.now_ms())
        try:
            outcome = await self.node.shard_for(spec.task_id).submit(command)
        except NotFound:
            raise _task_not_found() from None
        if outcome.record.status is Status.CANCELLED:
            raise TaskCancelled()
        return outcome.record

    async def submit_many(
        self, principal: Principal, specs: list[NewResult | CodeqError]
    ) -> list[ResultRecord | CodeqError]:
        """Per task, result and completion are one atomic write (spec 01 gap 17)."""
        principal.require_scope(SCOPE_RESULT)
        if not specs:
            raise InvalidInput("invalid body")
        if len(specs) > self.policy.max_batch_size:
            raise InvalidInput(f"batch size exceeds maximum of {self.policy.max_batch_size}")
        now_ms = self.clock.now_ms()
        results: list[ResultRecord | CodeqError] = [InvalidInput("invalid body")] * len(specs)
        per_shard: dict[int, list[tuple[int, c.Complete]]] = {}
        for position, spec in enumerate(specs):
            try:
                if isinstance(spec, CodeqError):
                    raise spec
                command = self._complete_command(principal, spec, now_ms)
            except CodeqError as exc:
                results[position] = exc
                continue
            per_shard.setdefault(shard_of(spec.task_id, len(self.node.shards)), []).append(
                (position, command)
            )
        refused_everywhere(
            await asyncio.gather(*(self._on_shard(n, items, results) for n, items in per_shard.items()))
        )
        return [_item_answer(r) for r in results]

    async def _on_shard(
        self, shard: int, items: list[tuple[int, c.Complete]], results: list[ResultRecord | CodeqError]
    ) -> NotLeader | None:
        return await submit_batch(self.node.shards[shard], items, results, _record_of)

    def _complete_command(self, principal: Principal, spec: NewResult, now_ms: int) -> c.Complete:
        if spec.status not in (Status.COMPLETED, Status.FAILED):
            raise InvalidInput("invalid status", field="status")
        result = spec.result
        if spec.status == Status.COMPLETED and result is None:
            raise InvalidInput("result required when status=COMPLETED", field="result")
        if spec.status == Status.FAILED and not spec.error.strip():
            raise InvalidInput("error required when status=FAILED", field="error")
        if result is not None and len(result) > self.policy.max_payload_bytes:
            raise PayloadTooLarge(f"result exceeds {self.policy.max_payload_bytes} bytes", field="result")
        return c.Complete(
            now_ms=now_ms,
            tenant=principal.tenant,
            worker_id=principal.subject,
            task_id=spec.task_id,
            status=spec.status,
            result="" if result in (None, "{}") else result,
            error=spec.error,
            artifacts=[_artifact(a) for a in spec.artifacts],
            lease_token=spec.lease_token,
        )

    async def get(
        self, principal: Principal, task_id: str, wait_seconds: int = 0
    ) -> tuple[Task, ResultRecord]:
        """The task and its result; `task not found` / `result not found` as 404s."""
        shard = self.node.shard_for(task_id)
        wait = min(max(wait_seconds, 0), self.policy.max_result_wait_seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                task = await shard.find_task(task_id, principal.tenant)
            except NotFound:
                raise NotFound("task not found") from None
            record = await shard.find_result(task_id) if task.has_result else None
            remaining = deadline - loop.time()
            if record is not None:
                return task, record
            if remaining <= 0 or self.node.waiters.closing:
                raise NotFound("result not found")
            waiter = self.node.waiters.result_waiter(task_id)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                self.node.waiters.discard_result(waiter, task_id)


def _artifact(artifact: ArtifactIn) -> tuple[str, str]:
    """Artifacts are references: a safe name and a URL (spec 01 gap 18)."""
    if not _ARTIFACT_NAME.fullmatch(artifact.name):
        raise InvalidInput(f"invalid artifact name {artifact.name[:64]!r}", field="artifacts")
    if artifact.content_base64:
        raise InvalidInput(
            f"artifact {artifact.name}: inline content is not stored; upload it and pass its url",
            field="artifacts",
        )
    if not artifact.url:
        raise InvalidInput(f"artifact {artifact.name}: url is required", field="artifacts")
    return artifact.name, artifact.url


def _task_not_found() -> NotFound:
    """codeQ's text for an unknown id on the result routes (spec 02 §4.9, §4.10), which its
    clients match on; the engine's own `not-found` stays on heartbeat, abandon and nack."""
    return NotFound("task not found")


def _item_answer(answer: ResultRecord | CodeqError) -> ResultRecord | CodeqError:
    if isinstance(answer, NotFound):
        return _task_not_found()
    # A task cancelled while leased finished as CANCELLED: that item is "task cancelled".
    if isinstance(answer, ResultRecord) and answer.status is Status.CANCELLED:
        return TaskCancelled()
    return answer


def _record_of(outcome: Completed) -> ResultRecord:
    return outcome.record
