"""The result-callback outbox (spec 01 §7.3, gap 6): callbacks owed, kept in the store.

An entry is staged by the same apply, and so lands in the same atomic write, as the terminal
transition that owes it (completed, failed, dead-lettered), so no acknowledged finish can
lose its callback. Delivery happens outside the apply path; each attempt's outcome comes
back as a `WebhookOutcome` command, which drops the entry or records the next attempt.
Every replica holds the same entries, so a new leader carries on where the old one stopped.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterator

import msgspec

from codeq.core.model import ResultRecord, Task
from codeq.engine import commands as c
from codeq.engine import keys
from codeq.engine.context import ApplyContext
from codeq.engine.outcomes import OutboxChanged


class OutboxEntry(msgspec.Struct, array_like=True, frozen=True):
    """One callback owed. Field order is the on-disk format: append new fields at the end."""

    delivery_id: str
    task_id: str
    tenant: str
    command: str
    url: str
    status: str
    result: str
    error: str
    artifacts: list[tuple[str, str]]
    completed_ms: int
    attempts: int = 0  # attempts made so far
    next_ms: int = 0  # when the next attempt is due


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(OutboxEntry).decode


class Outbox:
    """The entries of one shard, by delivery id, and a heap of (due time, id) to find the due
    ones without scanning all; rebuilt from the store at recovery.

    The heap is a scheduling aid, not state: applies push to it (and compact it, so a replica
    that never delivers keeps it bounded); the delivering node pops from it (`take_due`).
    A popped node whose entry changed or left since is simply dropped.
    """

    def __init__(self) -> None:
        self.entries: dict[str, OutboxEntry] = {}
        self._heap: list[tuple[int, str]] = []
        self._deferred: dict[str, int] = {}  # held back by the delivering node (rate limit)

    def load(self, scan: Iterator[tuple[bytes, bytes]]) -> int:
        self.entries = {}
        for _, raw in scan:
            entry = _decode(raw)
            self.entries[entry.delivery_id] = entry
        self._rebuild()
        return len(self.entries)

    def put(self, entry: OutboxEntry) -> None:
        self.entries[entry.delivery_id] = entry
        heapq.heappush(self._heap, (entry.next_ms, entry.delivery_id))
        if len(self._heap) > 2 * len(self.entries) + 1024:
            self._rebuild()

    def remove(self, delivery_id: str) -> None:
        self.entries.pop(delivery_id, None)
        self._deferred.pop(delivery_id, None)

    def take_due(self, now_ms: int, limit: int, busy: Container[str] = ()) -> list[OutboxEntry]:
        """Pop up to `limit` entries due by `now_ms`, skipping those in `busy` (being delivered:
        their outcome pushes them again)."""
        taken: dict[str, OutboxEntry] = {}  # one node per entry may be pushed twice: dedupe
        heap = self._heap
        while heap and heap[0][0] <= now_ms and len(taken) < limit:
            due_ms, delivery_id = heapq.heappop(heap)
            entry = self.entries.get(delivery_id)
            if entry is None or delivery_id in busy:
                continue
            if entry.next_ms == due_ms or self._deferred.get(delivery_id) == due_ms:
                self._deferred.pop(delivery_id, None)
                taken[delivery_id] = entry
        return list(taken.values())

    def defer(self, entry: OutboxEntry, until_ms: int) -> None:
        """Hold a taken entry back until `until_ms` without spending an attempt."""
        self._deferred[entry.delivery_id] = until_ms
        heapq.heappush(self._heap, (until_ms, entry.delivery_id))

    def put_back(self, entry: OutboxEntry) -> None:
        """An attempt that was not recorded: keep its entry schedulable here."""
        current = self.entries.get(entry.delivery_id)
        if current is not None:
            heapq.heappush(self._heap, (current.next_ms, current.delivery_id))

    def next_due_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def owe(self, ctx: ApplyContext, task: Task, record: ResultRecord, now_ms: int) -> None:
        """Owe a callback for `task`'s terminal transition, in the apply that makes it."""
        # The finish time in the id tells apart two finishes of one task (a requeue in between).
        delivery_id = f"{task.id}/{now_ms}"
        entry = OutboxEntry(
            delivery_id=delivery_id,
            task_id=task.id,
            tenant=task.tenant,
            command=task.command,
            url=task.webhook,
            status=record.status.value,
            result=record.result,
            error=record.error,
            artifacts=[(a.name, a.url) for a in record.artifacts],
            completed_ms=record.completed_ms,
            next_ms=now_ms,
        )
        self.put(entry)
        ctx.stage(keys.outbox(delivery_id), _encode(entry))

    def settle(self, ctx: ApplyContext, cmd: c.WebhookOutcome) -> OutboxChanged:
        """Record one attempt's outcome; an entry already settled (a retried command) is left
        alone."""
        entry = self.entries.get(cmd.delivery_id)
        if entry is None:
            return OutboxChanged(found=False)
        if cmd.delivered or cmd.next_ms <= 0:
            self.remove(cmd.delivery_id)
            ctx.stage(keys.outbox(cmd.delivery_id), None)
            return OutboxChanged(found=True)
        updated = msgspec.structs.replace(entry, attempts=entry.attempts + 1, next_ms=cmd.next_ms)
        self.put(updated)
        ctx.stage(keys.outbox(cmd.delivery_id), _encode(updated))
        return OutboxChanged(found=True)

    def _rebuild(self) -> None:
        self._heap = [(e.next_ms, e.delivery_id) for e in self.entries.values()]
        heapq.heapify(self._heap)
