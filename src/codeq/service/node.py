"""This process's shards: routing commands to them and reacting to what they applied."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codeq.core.errors import CodeqError, NotLeader
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import BatchApplied, Event, Finished, Ready, TaskEvent
from codeq.engine.shards import shard_of
from codeq.kv.api import Ops
from codeq.observability.metrics import Metrics
from codeq.replication.api import Replicator
from codeq.service.waiters import Waiters


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

    async def submit(self, command: Any) -> Any:
        return await self.replicator.submit(command)

    async def submit_batch(
        self, items: list[tuple[int, Any]], results: list[Any], accept: Callable[[Any], Any]
    ) -> NotLeader | None:
        """Apply `items` ((position, command) pairs) as one Batch and put each item's answer at
        its position in `results`: `accept(outcome)` for a success, the error for a refusal.
        A not-leader refusal covers every item and is returned for `refused_everywhere`."""
        batch = c.Batch(now_ms=items[0][1].now_ms, items=[command for _, command in items])
        try:
            outcome: BatchApplied = await self.submit(batch)
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
        # Called with the earliest time a delayed task or lease falls due, after each apply.
        self.on_due: Callable[[int], None] | None = None
        # Called with (tenant, command key) whenever tasks became claimable there.
        self.on_ready: Callable[[str, str], None] | None = None
        # Called when an apply owed a result callback (an outbox entry to deliver).
        self.on_callback_owed: Callable[[], None] | None = None

    def apply_fn(self, engine: Engine) -> Any:
        """The apply function a replicator runs for `engine`: apply, then react to events."""

        def apply(command: Any) -> tuple[Ops, Any]:
            try:
                return engine.apply(command)
            finally:
                events, engine.events = engine.events, []
                self._dispatch(events)
                due = engine.index.next_due_ms()
                if due is not None and self.on_due is not None:
                    self.on_due(due)

        return apply

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

    def _dispatch(self, events: list[Event]) -> None:
        metrics = self.metrics
        for event in events:
            if isinstance(event, Ready):
                self.waiters.ready(event.tenant, event.command_key, event.count)
                if self.on_ready is not None:
                    self.on_ready(event.tenant, event.command_key)
            elif isinstance(event, Finished):
                self.waiters.finished(event.task.id)
                if metrics is not None:
                    metrics.record_finished(event.task)
                if event.task.webhook and self.on_callback_owed is not None:
                    self.on_callback_owed()
            elif isinstance(event, TaskEvent) and metrics is not None:
                metrics.record_task_event(event.kind, event.task)
