"""How a worker sizes its claims and keeps leases, against an in-memory transport and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from codeq.client import AsyncWorker, Job, Result, ResultSpec, Task
from codeq.client._leases import LeaseKeeper
from codeq.client._slots import Slots
from tests.support.waiting import eventually


class MemoryTransport:
    """Just enough of a Transport for a worker: a queue of tasks, results and abandons noted."""

    base_url = "memory://"

    def __init__(self, tasks: list[Task]) -> None:
        self.queue = tasks
        self.claims: list[int] = []
        self.results: list[str] = []
        self.abandoned: list[str] = []
        self._claimed = asyncio.Event()

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        if not self.queue:
            await asyncio.Event().wait()  # a long poll that nothing answers
        taken, self.queue = self.queue[:count], self.queue[count:]
        self.claims.append(len(taken))
        return taken

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result]:
        self.results += [item.task_id for item in items]
        now = datetime.now(UTC)
        return [Result(task_id=item.task_id, status=item.status, completed_at=now) for item in items]

    async def abandon(self, task_id: str, lease_token: int = 0) -> None:
        self.abandoned.append(task_id)

    async def aclose(self) -> None:
        pass


def _tasks(count: int) -> list[Task]:
    now = datetime.now(UTC)
    return [
        Task(id=f"t{n}", command="wave", payload=n, status="IN_PROGRESS", created_at=now, updated_at=now)
        for n in range(count)
    ]


async def test_slots_freed_together_make_one_full_claim() -> None:
    # Two claim loops (8 slots, batches of 4). When the first batch finishes, its 4 slots come
    # back one by one in one loop turn: the first waiting loop claims all 4, instead of both
    # loops waking with one slot each and claiming 3 and 1.
    transport = MemoryTransport(_tasks(16))
    waves = [asyncio.Event() for _ in range(4)]
    started: list[int] = []
    worker = AsyncWorker(
        "memory://",
        "token",
        transport=transport,  # type: ignore[arg-type]  # the SDK's transport protocol, in memory
        concurrency=8,
        batch_size=4,
        shutdown_timeout=0,
    )

    @worker.handler("wave")
    async def handle(job: Job) -> None:
        started.append(job.payload)
        await waves[job.payload // 4].wait()

    running = asyncio.ensure_future(worker.run(handle_signals=False))
    await eventually(lambda: len(started) == 8)
    assert transport.claims == [4, 4]
    waves[0].set()
    await eventually(lambda: len(started) == 12)
    for _ in range(10):  # room for any further claim to be made
        await asyncio.sleep(0)
    assert transport.claims == [4, 4, 4]
    assert sorted(transport.results) == ["t0", "t1", "t2", "t3"]
    worker.stop()
    await running
    assert set(transport.abandoned) == {f"t{n}" for n in range(4, 12)}


async def test_a_waiter_that_gives_up_passes_its_turn_on() -> None:
    slots = Slots(1)
    assert await slots.take(4) == 1
    first = asyncio.ensure_future(slots.take(4))
    second = asyncio.ensure_future(slots.take(4))
    await asyncio.sleep(0)
    first.cancel()
    slots.give(2)
    assert await second == 2 and first.cancelled()
    assert slots.free == 0


class FakeClock:
    """A loop's clock and timers, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> _Timer:
        timer = _Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock on, firing each timer at its own time, in order."""
        until = self.now + seconds
        while due := [t for t in self.timers if t.when <= until and not t.cancelled]:
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback(*timer.args)
        self.now = until


class _Timer:
    def __init__(self, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class Delivery:
    def __init__(self, name: str, fired: list[tuple[str, float]], clock: FakeClock) -> None:
        self.name, self._fired, self._clock = name, fired, clock

    def heartbeat_due(self) -> None:
        self._fired.append((self.name, self._clock.now))


def test_each_held_delivery_falls_due_half_a_lease_after_it_was_taken() -> None:
    clock = FakeClock()
    keeper = LeaseKeeper(clock)  # type: ignore[arg-type]
    fired: list[tuple[str, float]] = []
    a, b, c, d = (Delivery(name, fired, clock) for name in "abcd")
    keeper.hold(a, 30)
    clock.advance(10)
    keeper.hold(b, 30)
    keeper.hold(c, 30)
    clock.advance(5)
    keeper.release(a)  # finished before its heartbeat fell due
    keeper.hold(d, 5)  # a shorter lease than those held: a timer of its own
    clock.advance(10)
    assert fired == [("d", 20.0)]
    clock.advance(20)
    assert fired == [("d", 20.0), ("b", 40.0), ("c", 40.0)]
    assert len(keeper) == 0
    keeper.hold(b, 30)  # held again after its heartbeat
    keeper.release(b)
    clock.advance(60)
    assert len(fired) == 3
