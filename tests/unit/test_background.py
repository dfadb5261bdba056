"""Background work is owned: a runner lives as long as its block, and a join waits for every task."""

from __future__ import annotations

import asyncio

from codeq.core.clock import FakeClock
from codeq.service.background import BackgroundTasks, Runner


async def test_join_waits_for_tasks_added_while_it_waits() -> None:
    background = BackgroundTasks()
    go, later = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def second() -> None:
        await later.wait()
        finished.append("second")

    async def first() -> None:
        await go.wait()
        # Like a claim's release: one background task starts another as it ends.
        background.add(asyncio.ensure_future(second()))
        finished.append("first")

    background.add(asyncio.ensure_future(first()))
    joining = asyncio.ensure_future(background.join())
    await asyncio.sleep(0)  # the join is waiting for `first` now
    go.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert finished == ["first"] and not joining.done()
    later.set()
    await joining
    assert finished == ["first", "second"]


async def test_a_runner_runs_for_the_length_of_its_block() -> None:
    ticks: list[int] = []
    clock = FakeClock()

    async def tick() -> None:
        ticks.append(clock.now_ms())

    before = asyncio.all_tasks()
    async with Runner("test", tick, clock.now_ms) as runner:
        assert runner.running
        while not ticks:
            await asyncio.sleep(0)
    assert not runner.running and asyncio.all_tasks() == before
