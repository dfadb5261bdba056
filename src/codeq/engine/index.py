"""The in-memory index of live tasks: where each one stands, never its record.

Per live task the index keeps one small tuple (`Live`: its order time, sequence, id, queue,
state and priority), the one thing scheduling needs; the payload and every other field stay
in the store (`L/<id>`) and are read when a task is claimed, read, listed or changes state
(issue 18). The index is rebuilt from the live key range at start (design D3) and changed
only by the engine's apply path, so every replica holds the same index.

A `Live` is immutable: a task that moves gets a new one, and the structures that pointed at
the old one (heaps, listings) are cleaned lazily — an entry counts only while its `Live` is
still the task's current one (`tasks[id] is live`).
"""

from __future__ import annotations

import bisect
import heapq
import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from codeq.core.model import Location, Status, Task
from codeq.core.names import command_key
from codeq.engine import listing
from codeq.engine.listing import DELAYED, IN_PROGRESS, READY, Entry
from codeq.engine.records import Placement

PRIORITIES = 10
_STALE_SLACK = 256  # stale listing entries tolerated beyond twice the live count
_LOCATIONS = {READY: Location.PENDING_LIST, DELAYED: Location.DELAYED_ZSET, IN_PROGRESS: Location.INPROG_SET}


class Live(NamedTuple):
    """Where one live task stands. A tuple: the ready heaps and listings order these directly
    (by order time, then sequence, unique among live tasks) and it costs no dict."""

    order_ms: int  # ready: when it became claimable; delayed and in progress: last change
    seq: int
    id: str
    queue: Queue
    state: str  # listing.READY, DELAYED or IN_PROGRESS
    priority: int

    @property
    def location(self) -> Location:
        return _LOCATIONS[self.state]


@dataclass(slots=True, eq=False)
class Queue:
    """One (tenant, command) queue: a heap per priority ordered by readiness time, then seq."""

    tenant: str
    cmd_key: str
    heaps: list[list[Live]] = field(default_factory=lambda: [[] for _ in range(PRIORITIES)])
    ready_by_priority: list[int] = field(default_factory=lambda: [0] * PRIORITIES)
    ready: int = 0
    delayed: int = 0
    in_progress: int = 0
    # Each live state's tasks by order time, for listings (engine/listing.py).
    listed: dict[str, list[Live]] = field(default_factory=lambda: {READY: [], DELAYED: [], IN_PROGRESS: []})
    # After a restart the listings stay in the store's order until a page is first asked for:
    # sorting a million entries is a tenth of a restart, and only an operator's listing needs
    # it (entries placed meanwhile may land anywhere; the first page's sort orders them too).
    unsorted: bool = False


def _live(fields: tuple[int, int, str, Queue, str, int]) -> Live:
    """A `Live` without the named tuple's Python-level constructor (half the cost)."""
    return tuple.__new__(Live, fields)


# (visible_ms, seq, ready_ms, live): when a delayed task becomes claimable, and in what order.
DelayedEntry = tuple[int, int, int, Live]
LeaseEntry = tuple[int, Live]  # (lease_until_ms, live)


class Index:
    def __init__(self) -> None:
        self.tasks: dict[str, Live] = {}
        self.queues: dict[tuple[str, str], Queue] = {}
        self.by_tenant: dict[str, dict[str, Queue]] = {}
        self.delayed: list[DelayedEntry] = []
        self.leases: list[LeaseEntry] = []
        self.leased = 0  # live tasks in progress, across queues: bounds the lease heap's leftovers
        self.dlq_counts: dict[tuple[str, str], int] = {}
        self.next_seq = 1

    def queue(self, tenant: str, cmd_key: str) -> Queue:
        queue = self.queues.get((tenant, cmd_key))
        if queue is None:
            queue = self.queues[(tenant, cmd_key)] = Queue(tenant, cmd_key)
            self.by_tenant.setdefault(tenant, {})[cmd_key] = queue
        return queue

    def listed(self, query: listing.PageQuery) -> list[Entry]:
        """A page of a queue's live tasks in one state (engine/listing.py)."""
        queue = self.queues.get((query.tenant, query.cmd_key))
        if queue is None:
            return []
        if queue.unsorted:
            for entries in queue.listed.values():
                _sort(entries)
            queue.unsorted = False
        return _page(queue.listed[query.state], query, self.tasks)

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    # -- placing a live task -------------------------------------------------------------

    def place(self, task: Task, now_ms: int) -> bool:
        """Index a live task by its state (and set its `location`); True when it is ready."""
        queue = self.queue(task.tenant, command_key(task.command))
        if task.status is Status.IN_PROGRESS:
            task.location = Location.INPROG_SET
            queue.in_progress += 1
            self.leased += 1
            live = _live((task.updated_ms, task.seq, task.id, queue, IN_PROGRESS, task.priority))
            self._enter(live, queue.in_progress)
            heapq.heappush(self.leases, (task.lease_until_ms, live))
            if len(self.leases) > 2 * self.leased + _STALE_SLACK:
                self._compact_leases()
            return False
        if task.visible_ms > now_ms:
            task.location = Location.DELAYED_ZSET
            queue.delayed += 1
            live = _live((task.updated_ms, task.seq, task.id, queue, DELAYED, task.priority))
            self._enter(live, queue.delayed)
            heapq.heappush(self.delayed, (task.visible_ms, task.seq, task.ready_ms, live))
            return False
        task.location = Location.PENDING_LIST
        self._ready(_live((task.ready_ms, task.seq, task.id, queue, READY, task.priority)))
        return True

    def _ready(self, live: Live) -> None:
        queue = live.queue
        queue.ready += 1
        queue.ready_by_priority[live.priority] += 1
        heapq.heappush(queue.heaps[live.priority], live)
        self._enter(live, queue.ready)

    def _enter(self, live: Live, count: int) -> None:
        """Make `live` the task's current position and list it; `count` is how many tasks
        are in its state now."""
        self.tasks[live.id] = live
        entries = live.queue.listed[live.state]
        if not entries or entries[-1] <= live:
            entries.append(live)  # the common case: the newest arrival
        else:
            bisect.insort(entries, live)
        self._trim(entries, count)

    def _trim(self, entries: list[Live], count: int) -> None:
        """Drop a listing's stale entries once they pass twice its `count` live ones: checked
        as tasks enter and as they leave, so a drain with nothing arriving (issue 18 item 4)
        does not keep every task it took. Amortised: each pass at least halves the list."""
        if len(entries) > 3 * count + _STALE_SLACK:
            entries[:] = list(_current(entries, self.tasks))

    # -- rebuilding at a restart --------------------------------------------------------

    def restore(self, stored: Iterable[Placement], now_ms: int) -> int:
        """Place the stored live tasks at a restart, unordered (`settle()` orders and counts
        them once): the same decisions as `place`, from the few fields a restart decodes.
        Returns the highest sequence number seen. Written for speed: a million tasks pass
        here, so the loop keeps to locals and looks a queue up only when it changes."""
        new = tuple.__new__
        tasks = self.tasks
        same_ms: dict[int, int] = {}  # one int per distinct ms, as the creates shared one per batch
        tenant: str | None = None
        command = ""
        queue = Queue("", "")  # replaced by the first task's
        append = queue.listed[READY].append
        max_seq = 0
        for task in stored:
            if task.command != command or task.tenant != tenant:
                tenant, command = task.tenant, task.command
                queue = self.queue(tenant, command_key(command))
                append = queue.listed[READY].append
            seq = task.seq
            if seq > max_seq:
                max_seq = seq
            ms = task.visible_ms
            if ms > now_ms or task.status is Status.IN_PROGRESS:
                self._restore_waiting(task, queue, same_ms)
                continue
            if ms < task.created_ms:
                ms = task.created_ms
            task_id = task.id
            live = new(Live, (same_ms.setdefault(ms, ms), seq, task_id, queue, READY, task.priority))
            tasks[task_id] = live
            append(live)
        return max_seq

    def _restore_waiting(self, task: Placement, queue: Queue, same_ms: dict[int, int]) -> None:
        """`restore` of a leased or delayed task."""
        order_ms = same_ms.setdefault(task.updated_ms, task.updated_ms)
        if task.status is Status.IN_PROGRESS:
            queue.in_progress += 1
            self.leased += 1
            live = Live(order_ms, task.seq, task.id, queue, IN_PROGRESS, task.priority)
            self.leases.append((task.lease_until_ms, live))
        else:
            queue.delayed += 1
            live = Live(order_ms, task.seq, task.id, queue, DELAYED, task.priority)
            self.delayed.append((task.visible_ms, task.seq, _ready_ms(task), live))
        self.tasks[task.id] = live
        queue.listed[live.state].append(live)

    def settle(self) -> None:
        """Order and count what `restore` placed: a heap per priority (heapify, linear), the
        listings left for their first page to sort (`Queue.unsorted`)."""
        heapq.heapify(self.delayed)
        heapq.heapify(self.leases)
        for queue in self.queues.values():
            ready = queue.listed[READY]
            heaps: list[list[Live]] = [[] for _ in range(PRIORITIES)]
            appends = [heap.append for heap in heaps]
            for live in ready:
                appends[live.priority](live)
            for heap in heaps:
                heapq.heapify(heap)
            queue.heaps = heaps
            queue.ready = len(ready)
            queue.ready_by_priority = [len(heap) for heap in heaps]
            queue.unsorted = True

    def _compact_leases(self) -> None:
        """Drop the lease entries of tasks that finished or moved since: otherwise each stays
        (with its task's id) until its lease deadline passes, and a drain under long leases
        holds every drained task for that long (issue 18)."""
        tasks = self.tasks
        self.leases[:] = [entry for entry in self.leases if tasks.get(entry[1].id) is entry[1]]
        heapq.heapify(self.leases)

    def unplace(self, task_id: str) -> Live:
        """Forget a live task's position before it is placed again in the same apply (its
        heap and listing entries become stale and are skipped)."""
        live = self.tasks[task_id]
        queue = live.queue
        if live.state is IN_PROGRESS:
            queue.in_progress -= 1
            self.leased -= 1
            self._trim(queue.listed[IN_PROGRESS], queue.in_progress)
        elif live.state is DELAYED:
            queue.delayed -= 1
            self._trim(queue.listed[DELAYED], queue.delayed)
        else:
            queue.ready -= 1
            queue.ready_by_priority[live.priority] -= 1
            self._trim(queue.listed[READY], queue.ready)
        return live

    def remove(self, task_id: str) -> None:
        self.unplace(task_id)
        del self.tasks[task_id]

    # -- popping -------------------------------------------------------------------------

    def head(self, queue: Queue) -> Live | None:
        """The queue's next claimable task, dropping stale heap entries."""
        counts = queue.ready_by_priority
        tasks = self.tasks
        for priority in range(PRIORITIES - 1, -1, -1):
            if not counts[priority]:
                continue
            heap = queue.heaps[priority]
            while heap:
                live = heap[0]
                if tasks.get(live.id) is live:
                    return live
                heapq.heappop(heap)
        return None

    def take(self, live: Live) -> None:
        """Take a task `head()` just returned out of its ready heap and its counts."""
        heapq.heappop(live.queue.heaps[live.priority])
        self.unplace(live.id)

    def promote_due(self, now_ms: int) -> Live | None:
        """Make the earliest due delayed task ready (same seq, ordered by when it became
        claimable); returns it, or None when none is due."""
        heap = self.delayed
        tasks = self.tasks
        while heap and heap[0][0] <= now_ms:
            _, _, ready_ms, live = heapq.heappop(heap)
            if tasks.get(live.id) is live:
                queue = live.queue
                queue.delayed -= 1
                promoted = _live((ready_ms, live.seq, live.id, queue, READY, live.priority))
                self._ready(promoted)
                return promoted
        return None

    def pop_expired_lease(self, now_ms: int) -> Live | None:
        heap = self.leases
        tasks = self.tasks
        while heap and heap[0][0] <= now_ms:
            _, live = heapq.heappop(heap)
            if tasks.get(live.id) is live:
                return live
        return None

    def next_due_ms(self) -> int | None:
        """The earliest time a delayed task becomes ready or a lease may expire."""
        times = [heap[0][0] for heap in (self.delayed, self.leases) if heap]
        return min(times) if times else None


def _sort(entries: list[Live]) -> None:
    """Order a restart's listing by (order time, seq, id) as two stable sorts on one plain int
    each, keyed in C (`itemgetter`): a sort comparing `Live` tuples chases scattered objects
    per comparison, and a computed key costs a Python call per entry. The store yields tasks
    by id, so ties (two old shards' numbers after `codeq reshard`) stay in id order; sequence
    numbers follow creation, so the second sort mostly meets runs already in order."""
    entries.sort(key=_SEQ)
    entries.sort(key=_ORDER_MS)


_ORDER_MS, _SEQ = operator.itemgetter(0), operator.itemgetter(1)


def _ready_ms(task: Placement) -> int:
    """`Task.ready_ms` of a stored task: when it became (or becomes) claimable."""
    return task.visible_ms if task.visible_ms > task.created_ms else task.created_ms


def position(live: Live) -> Entry:
    """A live task's listing position (what a page cursor names)."""
    return (live.order_ms, live.seq, live.id)


def _page(entries: list[Live], query: listing.PageQuery, tasks: Mapping[str, Live]) -> list[Entry]:
    """Up to `limit` current positions past `after` (exclusive), newest or oldest first."""
    found: list[Entry] = []
    for live in _current(_walk(entries, query.after, query.newest), tasks):
        found.append(position(live))
        if len(found) >= query.limit:
            break
    return found


def _current(entries: Iterable[Live], tasks: Mapping[str, Live]) -> Iterator[Live]:
    """The entries that still stand for their task: anything else is a leftover of an
    earlier position (each `Live` is listed once, so no entry repeats)."""
    return (live for live in entries if tasks.get(live.id) is live)


def _walk(entries: list[Live], after: Entry | None, newest: bool) -> Iterator[Live]:
    if newest:
        start = len(entries) if after is None else bisect.bisect_left(entries, after, key=position)
        return (entries[i] for i in range(start - 1, -1, -1))
    start = 0 if after is None else bisect.bisect_right(entries, after, key=position)
    return (entries[i] for i in range(start, len(entries)))
