"""The in-memory index of live tasks: ready queues, the delayed heap and the lease heap.

Everything here is rebuilt from the live key range at start (design D3) and changed only by
the engine's apply path, so every replica holds the same index. Heap entries are validated
when popped, so a superseded entry (an extended lease, say) is simply skipped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from codeq.core.model import Location, Status, Task
from codeq.core.names import command_key
from codeq.engine import listing
from codeq.engine.listing import DELAYED, IN_PROGRESS, READY, Entry

ReadyEntry = tuple[int, int, int, str]  # (-priority, ready_ms, seq, task id)


@dataclass(slots=True)
class Queue:
    """One (tenant, command) queue: a heap served by priority, then readiness time, then seq."""

    heap: list[ReadyEntry] = field(default_factory=list)
    ready_by_priority: list[int] = field(default_factory=lambda: [0] * 10)
    ready: int = 0
    delayed: int = 0
    in_progress: int = 0
    # Each live state's tasks by order time, for listings (engine/listing.py).
    listed: dict[str, list[Entry]] = field(default_factory=lambda: {READY: [], DELAYED: [], IN_PROGRESS: []})


class Index:
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.queues: dict[tuple[str, str], Queue] = {}
        self.by_tenant: dict[str, dict[str, Queue]] = {}
        self.delayed: list[tuple[int, int, str]] = []  # (visible_ms, seq, task id)
        self.leases: list[tuple[int, str]] = []  # (lease_until_ms, task id)
        self.dlq_counts: dict[tuple[str, str], int] = {}
        self.next_seq = 1

    def queue(self, tenant: str, cmd_key: str) -> Queue:
        queue = self.queues.get((tenant, cmd_key))
        if queue is None:
            queue = self.queues[(tenant, cmd_key)] = Queue()
            self.by_tenant.setdefault(tenant, {})[cmd_key] = queue
        return queue

    def queue_of(self, task: Task) -> Queue:
        return self.queue(task.tenant, command_key(task.command))

    def listed(self, query: listing.PageQuery) -> list[Entry]:
        """A page of a queue's live tasks in one state (engine/listing.py)."""
        queue = self.queues.get((query.tenant, query.cmd_key))
        if queue is None:
            return []
        return listing.page(queue.listed[query.state], query, self.tasks)

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    # -- placing a live task -------------------------------------------------------------

    def place(self, task: Task, now_ms: int) -> bool:
        """Index a live task by its state; returns True when it is ready to claim."""
        self.tasks[task.id] = task
        queue = self.queue_of(task)
        if task.status is Status.IN_PROGRESS:
            task.location = Location.INPROG_SET
            queue.in_progress += 1
            heapq.heappush(self.leases, (task.lease_until_ms, task.id))
            entry = (task.updated_ms, task.seq, task.id)
            listing.enter(queue.listed[IN_PROGRESS], entry, queue.in_progress, IN_PROGRESS, self.tasks)
            return False
        if task.visible_ms > now_ms:
            task.location = Location.DELAYED_ZSET
            queue.delayed += 1
            heapq.heappush(self.delayed, (task.visible_ms, task.seq, task.id))
            entry = (task.updated_ms, task.seq, task.id)
            listing.enter(queue.listed[DELAYED], entry, queue.delayed, DELAYED, self.tasks)
            return False
        task.location = Location.PENDING_LIST
        queue.ready += 1
        queue.ready_by_priority[task.priority] += 1
        heapq.heappush(queue.heap, (-task.priority, task.ready_ms, task.seq, task.id))
        entry = (task.ready_ms, task.seq, task.id)
        listing.enter(queue.listed[READY], entry, queue.ready, READY, self.tasks)
        return True

    def unplace(self, task: Task) -> None:
        """Forget a live task's position (its heap entries become stale and are skipped)."""
        queue = self.queue_of(task)
        if task.location is Location.INPROG_SET:
            queue.in_progress -= 1
        elif task.location is Location.DELAYED_ZSET:
            queue.delayed -= 1
        else:
            queue.ready -= 1
            queue.ready_by_priority[task.priority] -= 1

    def remove(self, task: Task) -> None:
        self.unplace(task)
        del self.tasks[task.id]

    # -- popping -------------------------------------------------------------------------

    def head(self, queue: Queue) -> ReadyEntry | None:
        """The queue's next claimable entry, dropping stale ones."""
        heap = queue.heap
        while heap:
            _, _, seq, task_id = entry = heap[0]
            task = self.tasks.get(task_id)
            if task is not None and task.location is Location.PENDING_LIST and task.seq == seq:
                return entry
            heapq.heappop(heap)
        return None

    def pop_due_delayed(self, now_ms: int) -> Task | None:
        heap = self.delayed
        while heap and heap[0][0] <= now_ms:
            visible_ms, seq, task_id = heapq.heappop(heap)
            task = self.tasks.get(task_id)
            if (
                task is not None
                and task.location is Location.DELAYED_ZSET
                and task.seq == seq
                and task.visible_ms == visible_ms
            ):
                return task
        return None

    def pop_expired_lease(self, now_ms: int) -> Task | None:
        heap = self.leases
        while heap and heap[0][0] <= now_ms:
            until_ms, task_id = heapq.heappop(heap)
            task = self.tasks.get(task_id)
            if task is not None and task.status is Status.IN_PROGRESS and task.lease_until_ms == until_ms:
                return task
        return None

    def next_due_ms(self) -> int | None:
        """The earliest time a delayed task becomes ready or a lease may expire."""
        times = [heap[0][0] for heap in (self.delayed, self.leases) if heap]
        return min(times) if times else None
