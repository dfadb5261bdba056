"""Long-poll waiting: claims wait for ready tasks, result reads wait for a finished task.

Waiters are woken by the engine's events, never by polling (spec 02 gap 8). Each waiter is
a future registered under every key it cares about; a wake resolves it and the waiter
retries its claim. Dicts keep registration order, so the longest waiter is woken first.
A claim waiter counts for as many tasks as its claim asks for: a batch claim woken by a
batch of ready tasks takes them all, so the rest are not offered elsewhere (ADR 0009).
With a process per shard it also remembers which queues this process's claims take from
(`has_takers`), so that another process starts a claim here only for a queue nobody here takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from codeq.engine.outcomes import Event, Finished, Ready

Waiter = asyncio.Future[None]
K = TypeVar("K")
# A queue has takers in this process while a claim waits on it or one was made this recently.
TAKERS_WINDOW_MS = 1_000
NEVER = -(2**62)
# Claims may name any commands: past this many remembered queues, those older than the window
# (which no longer count) are forgotten, so the memory follows the queues claimed lately.
TAKERS_REMEMBERED = 4_096


class Waiters:
    def __init__(self) -> None:
        # Each group maps a waiter to how many tasks it stands for (a result waiter: one).
        self._claims: dict[tuple[str, str], dict[Waiter, int]] = {}
        self._wildcard: dict[str, dict[Waiter, int]] = {}
        self._results: dict[str, dict[Waiter, int]] = {}
        self.closing = False
        # Told of ready tasks no claim waiting here was woken for (tenant, command key, count):
        # with a process per shard, they are offered to the other processes (ADR 0009).
        self.unclaimed: Callable[[str, str, int], None] | None = None
        # When this process's claims last asked for each queue (tenant, command key), and for
        # any queue of a tenant (a claim naming no commands).
        self._claimed: dict[tuple[str, str], int] = {}
        self._claimed_any: dict[str, int] = {}
        self._forget_above = TAKERS_REMEMBERED

    def close(self) -> None:
        """Shutting down: wake every waiter so long polls answer now instead of at their deadline."""
        self.closing = True
        for groups in (self._claims, self._wildcard, self._results):
            for group in groups.values():
                _wake(group, sum(group.values()))

    def claim_waiter(self, tenant: str, command_keys: Iterable[str] | None, count: int = 1) -> Waiter:
        """A future woken when a task becomes ready in one of the queues (None: any queue),
        for a claim of up to `count` tasks."""
        waiter: Waiter = asyncio.get_running_loop().create_future()
        count = max(count, 1)
        if command_keys is None:
            self._wildcard.setdefault(tenant, {})[waiter] = count
        else:
            for key in command_keys:
                self._claims.setdefault((tenant, key), {})[waiter] = count
        return waiter

    def result_waiter(self, task_id: str) -> Waiter:
        waiter: Waiter = asyncio.get_running_loop().create_future()
        self._results.setdefault(task_id, {})[waiter] = 1
        return waiter

    def discard_claim(self, waiter: Waiter, tenant: str, command_keys: Iterable[str] | None) -> None:
        if command_keys is None:
            _discard(self._wildcard, tenant, waiter)
        else:
            for key in command_keys:
                _discard(self._claims, (tenant, key), waiter)

    def discard_result(self, waiter: Waiter, task_id: str) -> None:
        _discard(self._results, task_id, waiter)

    def deliver(self, events: Sequence[Event], next_due_ms: int | None) -> None:
        """The node's first listener: wake claims on `Ready`, result reads on `Finished`.
        Events arrive only once durable, so a woken reader never sees a write a crash could
        still lose. The ready counts of one delivery (one group commit) are added up per
        queue first, so that a batch claim woken by the first of them stands for the rest."""
        ready: dict[tuple[str, str], int] = {}
        for event in events:
            if isinstance(event, Ready):
                key = (event.tenant, event.command_key)
                ready[key] = ready.get(key, 0) + event.count
            elif isinstance(event, Finished):
                self.finished(event.task.id)
        for (tenant, command_key), count in ready.items():
            left = self.ready(tenant, command_key, count)
            if left > 0 and self.unclaimed is not None:
                self.unclaimed(tenant, command_key, left)

    def ready(self, tenant: str, command_key: str, count: int) -> int:
        """`count` tasks became claimable: wake the oldest claims until their counts cover
        them; returns how many no waiting claim was woken for."""
        count = _wake(self._claims.get((tenant, command_key)), count)
        if count > 0:
            count = _wake(self._wildcard.get(tenant), count)
        return count

    def note_claim(self, tenant: str, command_keys: Iterable[str] | None, now_ms: int) -> None:
        """A claim of this process asks for these queues (None: any of the tenant's) now."""
        if command_keys is None:
            self._claimed_any[tenant] = now_ms
        else:
            for key in command_keys:
                self._claimed[(tenant, key)] = now_ms
        if len(self._claimed) + len(self._claimed_any) > self._forget_above:
            self._forget_before(now_ms - TAKERS_WINDOW_MS)

    def _forget_before(self, since_ms: int) -> None:
        self._claimed = {queue: at for queue, at in self._claimed.items() if at >= since_ms}
        self._claimed_any = {tenant: at for tenant, at in self._claimed_any.items() if at >= since_ms}
        # Still many (all claimed lately): look again only once they have doubled.
        self._forget_above = max(TAKERS_REMEMBERED, 2 * (len(self._claimed) + len(self._claimed_any)))

    def has_takers(self, tenant: str, command_key: str, now_ms: int) -> bool:
        """Whether claims of this process take from this queue: one waits on it, or one asked
        for it within TAKERS_WINDOW_MS."""
        if self._claims.get((tenant, command_key)) or self._wildcard.get(tenant):
            return True
        last = max(self._claimed.get((tenant, command_key), NEVER), self._claimed_any.get(tenant, NEVER))
        return now_ms - last <= TAKERS_WINDOW_MS

    def finished(self, task_id: str) -> None:
        waiters = self._results.pop(task_id, None)
        if waiters:
            _wake(waiters, sum(waiters.values()))

    def __len__(self) -> int:
        groups = (*self._claims.values(), *self._wildcard.values(), *self._results.values())
        return sum(len(group) for group in groups)


def _wake(waiters: dict[Waiter, int] | None, count: int) -> int:
    """Resolve pending waiters, oldest first, until their counts cover `count` tasks;
    returns how many tasks no woken waiter stands for."""
    if not waiters:
        return count
    for waiter, wants in list(waiters.items()):
        if count <= 0:
            break
        del waiters[waiter]
        if not waiter.done():
            waiter.set_result(None)
            count -= wants
    return max(count, 0)


def _discard(groups: dict[K, dict[Waiter, int]], key: K, waiter: Waiter) -> None:
    group = groups.get(key)
    if group is not None:
        group.pop(waiter, None)
        if not group:
            del groups[key]
