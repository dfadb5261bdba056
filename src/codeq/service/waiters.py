"""Long-poll waiting: claims wait for ready tasks, result reads wait for a finished task.

Waiters are woken by the engine's events, never by polling (spec 02 gap 8). Each waiter is
a future registered under every key it cares about; a wake resolves it and the waiter
retries its claim. Dicts keep registration order, so the longest waiter is woken first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from codeq.engine.outcomes import Event, Finished, Ready

Waiter = asyncio.Future[None]
K = TypeVar("K")


class Waiters:
    def __init__(self) -> None:
        self._claims: dict[tuple[str, str], dict[Waiter, None]] = {}
        self._wildcard: dict[str, dict[Waiter, None]] = {}
        self._results: dict[str, dict[Waiter, None]] = {}
        self.closing = False
        # Told of ready tasks no claim waiting here was woken for (tenant, command key, count):
        # with a process per shard, they are offered to the other processes (ADR 0009).
        self.unclaimed: Callable[[str, str, int], None] | None = None

    def close(self) -> None:
        """Shutting down: wake every waiter so long polls answer now instead of at their deadline."""
        self.closing = True
        for groups in (self._claims, self._wildcard, self._results):
            for group in groups.values():
                _wake(group, len(group))

    def claim_waiter(self, tenant: str, command_keys: Iterable[str] | None) -> Waiter:
        """A future woken when a task becomes ready in one of the queues (None: any queue)."""
        waiter: Waiter = asyncio.get_running_loop().create_future()
        if command_keys is None:
            self._wildcard.setdefault(tenant, {})[waiter] = None
        else:
            for key in command_keys:
                self._claims.setdefault((tenant, key), {})[waiter] = None
        return waiter

    def result_waiter(self, task_id: str) -> Waiter:
        waiter: Waiter = asyncio.get_running_loop().create_future()
        self._results.setdefault(task_id, {})[waiter] = None
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
        still lose."""
        for event in events:
            if isinstance(event, Ready):
                left = self.ready(event.tenant, event.command_key, event.count)
                if left > 0 and self.unclaimed is not None:
                    self.unclaimed(event.tenant, event.command_key, left)
            elif isinstance(event, Finished):
                self.finished(event.task.id)

    def ready(self, tenant: str, command_key: str, count: int) -> int:
        """`count` tasks became claimable: wake up to that many claims (oldest first);
        returns how many no waiting claim was woken for."""
        count = _wake(self._claims.get((tenant, command_key)), count)
        if count > 0:
            count = _wake(self._wildcard.get(tenant), count)
        return count

    def finished(self, task_id: str) -> None:
        waiters = self._results.pop(task_id, None)
        if waiters:
            _wake(waiters, len(waiters))

    def __len__(self) -> int:
        groups = (*self._claims.values(), *self._wildcard.values(), *self._results.values())
        return sum(len(group) for group in groups)


def _wake(waiters: dict[Waiter, None] | None, count: int) -> int:
    """Resolve up to `count` pending waiters; returns how many wakes are left over."""
    if not waiters:
        return count
    for waiter in list(waiters):
        if count <= 0:
            break
        del waiters[waiter]
        if not waiter.done():
            waiter.set_result(None)
            count -= 1
    return count


def _discard(groups: dict[K, dict[Waiter, None]], key: K, waiter: Waiter) -> None:
    group = groups.get(key)
    if group is not None:
        group.pop(waiter, None)
        if not group:
            del groups[key]
