"""This process's shards: routing commands to them and publishing what they durably applied."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

from codeq.core.errors import CodeqError, NotLeader
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import Completed, Created, Event
from codeq.engine.shards import shard_of
from codeq.observability.metrics import Metrics
from codeq.replication.api import PublishFn, Replicator
from codeq.service.listeners import Listener, Listeners, task_metrics
from codeq.service.waiters import Waiters

OutcomeT = TypeVar("OutcomeT")
AnswerT = TypeVar("AnswerT")


def refused_everywhere(refusals: list[NotLeader | None]) -> None:
    """After per-shard batch applies: when every shard refused as not-leader, nothing was
    applied (a follower refuses before applying), so the whole request goes to a leader (307).
    Otherwise the refused shards' items carry the error and the rest stands."""
    if refusals and all(refusal is not None for refusal in refusals):
        raise refusals[0]  # type: ignore[misc]


@dataclass(slots=True)
class Shard:
    number: int
    engine: Engine
    replicator: Replicator

    async def submit(self, command: c.Command[OutcomeT]) -> OutcomeT:
        return await self.replicator.submit(command)

    @overload
    async def submit_batch(
        self,
        items: Sequence[tuple[int, c.Create]],
        results: list[AnswerT | CodeqError],
        accept: Callable[[Created], AnswerT],
    ) -> NotLeader | None: ...

    @overload
    async def submit_batch(
        self,
        items: Sequence[tuple[int, c.Complete]],
        results: list[AnswerT | CodeqError],
        accept: Callable[[Completed], AnswerT],
    ) -> NotLeader | None: ...

    async def submit_batch(
        self,
        items: Sequence[tuple[int, c.Create | c.Complete]],
        results: list[AnswerT | CodeqError],
        accept: Callable[[Any], AnswerT],  # the overloads pair each command with its outcome
    ) -> NotLeader | None:
        """Apply `items` ((position, command) pairs) as one Batch and put each item's answer at
        its position in `results`: `accept(outcome)` for a success, the error for a refusal.
        A not-leader refusal covers every item and is returned for `refused_everywhere`."""
        batch = c.Batch(now_ms=items[0][1].now_ms, items=[command for _, command in items])
        try:
            outcome = await self.submit(batch)
        except NotLeader as exc:
            for position, _ in items:
                results[position] = exc
            return exc
        for (position, _), item in zip(items, outcome.items, strict=True):
            results[position] = item if isinstance(item, CodeqError) else accept(item)
        return None


class Node:
    def __init__(self, waiters: Waiters, metrics: Metrics | None = None) -> None:
        self.shards: list[Shard] = []
        self.waiters = waiters
        self.metrics = metrics
        self._next_start = itertools.count()
        self.listeners = Listeners(metrics)
        self.listeners.add("waiters", waiters.deliver)
        if metrics is not None:
            self.listeners.add("metrics", task_metrics(metrics))

    def listen(self, name: str, listener: Listener) -> None:
        """Hear every shard's events once they are durable (see `service/listeners.py`)."""
        self.listeners.add(name, listener)

    def publisher(self, engine: Engine) -> PublishFn:
        """What `engine`'s replicator calls with the events of durable applies."""
        deliver = self.listeners.deliver

        def publish(events: Sequence[object]) -> None:
            # The replicator hands back exactly what `engine.apply` returned.
            deliver(cast("Sequence[Event]", events), engine.index.next_due_ms())

        return publish

    def shard_for(self, task_id: str) -> Shard:
        return self.shards[shard_of(task_id, len(self.shards))]

    def read_consistency(self, task_id: str) -> str:
        """How fresh a local read of this task is: "leader" (this node leads its shard, or
        there is no replication) or "stale" (a follower's replica, possibly behind)."""
        return "leader" if self.shard_for(task_id).replicator.is_leader else "stale"

    def led_shards(self) -> frozenset[int]:
        """The shards whose writes this node can take now (all of them without Raft)."""
        if len(self.shards) <= 1:
            return frozenset()
        return frozenset(s.number for s in self.shards if s.replicator.is_leader)

    def claim_order(self) -> list[Shard]:
        """Every shard once, starting at the next one in turn, so claims spread fairly."""
        start = next(self._next_start) % len(self.shards)
        return self.shards[start:] + self.shards[:start]
