"""This process's shards: routing commands to them and publishing what they durably applied."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, overload

from codeq.core.errors import CodeqError, NotLeader, Unavailable
from codeq.core.model import ResultRecord, Task
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import Completed, Created, Event
from codeq.engine.shards import shard_of
from codeq.observability.metrics import Metrics
from codeq.replication.api import PublishFn, Replicator
from codeq.service.listeners import Listener, Listeners, task_metrics
from codeq.service.shard_reads import READS
from codeq.service.waiters import Waiters

OutcomeT = TypeVar("OutcomeT")
# With a process per shard, one claim in this many tries the other shards before its own.
REMOTE_FIRST_EVERY = 16
# Where the claim being made started (set by `Node.claim_order` in the claim's own context):
# "remote_first" on the turn above, else "local_first"; the forwarding metrics read it.
CLAIM_TURN: ContextVar[str] = ContextVar("claim_turn", default="local_first")
QueueCounts = tuple[int, int, int, int]  # ready, delayed, in progress, dead-lettered
AnswerT = TypeVar("AnswerT")


def refused_everywhere(refusals: list[NotLeader | None]) -> None:
    """After per-shard batch applies: when every shard refused as not-leader, nothing was
    applied (a follower refuses before applying), so the whole request goes to a leader (307).
    Otherwise the refused shards' items carry the error and the rest stands."""
    if refusals and all(refusal is not None for refusal in refusals):
        raise refusals[0]  # type: ignore[misc]


class ShardHandle(Protocol):
    """What the services need of a shard, wherever it lives: `Shard` in this process, or a
    handle on the process that owns it (`codeq.cluster`), addressed so it could be elsewhere."""

    number: int

    @property
    def is_leader(self) -> bool: ...

    async def submit(self, command: c.Command[OutcomeT]) -> OutcomeT: ...

    def may_have_ready(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool: ...

    def needs_takers(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool:
        """Whether claims elsewhere should start at this shard now and then: unless its own
        process's claims take from these queues (its ready feed said so lately)."""

    async def find_task(self, task_id: str, tenant: str) -> Task: ...

    async def find_result(self, task_id: str) -> ResultRecord | None: ...

    async def queue_counts(self, tenant: str, key: str) -> QueueCounts: ...

    async def read(self, name: str, *arguments: Any) -> Any:
        """Run the named read of `service/shard_reads.py` on this shard's engine."""


@dataclass(slots=True)
class Shard:
    """A shard this process owns: its engine and replicator."""

    number: int
    engine: Engine
    replicator: Replicator
    submitted: int = 0  # commands submitted here (for the forwarded fraction, ADR 0009)

    @property
    def is_leader(self) -> bool:
        return self.replicator.is_leader

    async def submit(self, command: c.Command[OutcomeT]) -> OutcomeT:
        self.submitted += 1
        return await self.replicator.submit(command)

    def may_have_ready(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool:
        return self.engine.may_have_ready(tenant, commands, now_ms)

    def needs_takers(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool:
        return False  # this process's own claims start here anyway

    async def find_task(self, task_id: str, tenant: str) -> Task:
        return self.engine.find_task(task_id, tenant)

    async def find_result(self, task_id: str) -> ResultRecord | None:
        return self.engine.find_result(task_id)

    async def queue_counts(self, tenant: str, key: str) -> QueueCounts:
        counts: QueueCounts = READS["queue_counts"].run(self.engine, tenant, key)
        return counts

    async def read(self, name: str, *arguments: Any) -> Any:
        return READS[name].run(self.engine, *arguments)


@overload
async def submit_batch(
    shard: ShardHandle,
    items: Sequence[tuple[int, c.Create]],
    results: list[AnswerT | CodeqError],
    accept: Callable[[Created], AnswerT],
) -> NotLeader | None: ...


@overload
async def submit_batch(
    shard: ShardHandle,
    items: Sequence[tuple[int, c.Complete]],
    results: list[AnswerT | CodeqError],
    accept: Callable[[Completed], AnswerT],
) -> NotLeader | None: ...


async def submit_batch(
    shard: ShardHandle,
    items: Sequence[tuple[int, c.Create | c.Complete]],
    results: list[AnswerT | CodeqError],
    accept: Callable[[Any], AnswerT],  # the overloads pair each command with its outcome
) -> NotLeader | None:
    """Apply `items` ((position, command) pairs) as one Batch and put each item's answer at
    its position in `results`: `accept(outcome)` for a success, the error for a refusal.
    A not-leader refusal covers every item and is returned for `refused_everywhere`."""
    batch = c.Batch(now_ms=items[0][1].now_ms, items=[command for _, command in items])
    try:
        outcome = await shard.submit(batch)
    except NotLeader as exc:
        for position, _ in items:
            results[position] = exc
        return exc
    for (position, _), item in zip(items, outcome.items, strict=True):
        results[position] = item if isinstance(item, CodeqError) else accept(item)
    return None


class Node:
    def __init__(self, waiters: Waiters, metrics: Metrics | None = None) -> None:
        # Every shard of the node in order; with a process per shard, those other processes
        # own appear as handles on them (`codeq.cluster.remote`).
        self.shards: list[ShardHandle] = []
        self.waiters = waiters
        self.metrics = metrics
        self._next_start = itertools.count()
        self.listeners = Listeners(metrics)
        # Told of tasks made ready on shards other processes own (their ready feed, ADR 0009).
        self.elsewhere_ready: list[Callable[[str, str], None]] = []
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

    def shard_for(self, task_id: str) -> ShardHandle:
        return self.shards[shard_of(task_id, len(self.shards))]

    @property
    def local_shards(self) -> list[Shard]:
        """The shards this process owns (all of them unless there is a process per shard)."""
        return [shard for shard in self.shards if isinstance(shard, Shard)]

    @staticmethod
    def is_local(shard: ShardHandle) -> bool:
        """Whether this process owns `shard` (a command to it does not cross processes)."""
        return isinstance(shard, Shard)

    def local(self, number: int) -> Shard:
        """Shard `number`, which this use needs in this process (its engine read directly)."""
        shard = self.shards[number]
        if not isinstance(shard, Shard):
            raise Unavailable(f"shard {number} is owned by another process")
        return shard

    def runs_here(self, number: int) -> bool:
        """Whether this process owns shard `number` and leads it: the gate of background work
        that belongs to one shard (schedules, the subscription sweep, the notifier)."""
        shard = self.shards[number]
        return isinstance(shard, Shard) and shard.is_leader

    def read_consistency(self, task_id: str) -> str:
        """How fresh a local read of this task is: "leader" (this node leads its shard, or
        there is no replication) or "stale" (a follower's replica, possibly behind)."""
        return "leader" if self.shard_for(task_id).is_leader else "stale"

    def led_shards(self) -> frozenset[int]:
        """The shards whose writes this node can take now (all of them without Raft).
        With a process per shard: this process's own, so a create stays here; under Raft,
        when this node does not lead it, the ones other processes of this node lead (the
        create is forwarded there rather than sent to another node)."""
        if len(self.shards) <= 1:
            return frozenset()
        local = self.local_shards
        if len(local) < len(self.shards):
            own = frozenset(s.number for s in local if s.is_leader)
            if own:
                return own
        return frozenset(s.number for s in self.shards if s.is_leader)

    def claim_order(self, tenant: str, commands: list[str] | None, now_ms: int) -> list[ShardHandle]:
        """Every shard once for a claim of `tenant` for `commands` (None: any): this process's
        own first, then the others starting at the next one in turn, so claims stay local
        when they can and spread fairly when they cannot."""
        local = self.local_shards
        if len(local) == len(self.shards):
            start = next(self._next_start) % len(self.shards)
            return self.shards[start:] + self.shards[:start]
        keys = None if commands is None else [command_key(name) for name in commands]
        self.waiters.note_claim(tenant, keys, now_ms)  # this process takes from these queues
        others = [shard for shard in self.shards if not isinstance(shard, Shard)]
        turn = next(self._next_start)
        start = (turn // REMOTE_FIRST_EVERY) % len(others)
        others = others[start:] + others[:start]
        # Every few claims start elsewhere, so that a shard whose own process has no workers
        # for its ready tasks is still drained while this one never runs dry; only then: where
        # that process's own claims take them, starting there only forwarded (ADR 0009).
        remote_first = turn % REMOTE_FIRST_EVERY == REMOTE_FIRST_EVERY - 1 and any(
            shard.needs_takers(tenant, commands, now_ms) for shard in others
        )
        CLAIM_TURN.set("remote_first" if remote_first else "local_first")
        return [*others, *local] if remote_first else [*local, *others]
