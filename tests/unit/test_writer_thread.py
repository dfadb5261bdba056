"""The store's writer thread: calls in order, answers and failures on the caller's loop."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from codeq.kv.writer import WriterThread


async def test_calls_run_in_submission_order_on_one_other_thread() -> None:
    writer = WriterThread("test-writer")
    seen: list[tuple[int, str]] = []

    def record(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    results = await asyncio.gather(*(writer.run(record, n) for n in range(50)))
    writer.stop()
    assert results == [n * 10 for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-writer"}


async def test_a_failure_reaches_its_caller_and_the_thread_goes_on() -> None:
    writer = WriterThread("test-writer")

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await writer.run(fail)
    assert await writer.run(lambda: "still serving") == "still serving"
    writer.stop()


async def test_a_cancelled_wait_does_not_undo_or_break_the_call() -> None:
    writer = WriterThread("test-writer")
    gate = threading.Event()
    done: list[str] = []

    def slow() -> None:
        gate.wait(5)
        done.append("written")

    waiting = writer.run(slow)
    waiting.cancel()
    gate.set()
    assert await writer.run(lambda: "next") == "next"  # answered after the cancelled call ran
    assert done == ["written"]
    writer.stop()


async def test_stop_finishes_what_was_queued_then_refuses() -> None:
    writer = WriterThread("test-writer")
    done: list[int] = []
    pending = [writer.run(done.append, n) for n in range(5)]
    writer.stop()
    assert done == [0, 1, 2, 3, 4]
    await asyncio.gather(*pending)
    with pytest.raises(RuntimeError, match="stopped"):
        writer.run(done.append, 9)


def test_stop_of_a_writer_never_used_returns_at_once() -> None:
    WriterThread("test-writer").stop()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
async def test_the_writer_runs_under_sched_batch_and_the_caller_keeps_its_policy() -> None:
    # Its wake-ups must not preempt the event loop's thread (docs/benchmarks.md, ADR 0009).
    writer = WriterThread("test-writer")
    policy = await writer.run(os.sched_getscheduler, 0)
    writer.stop()
    assert policy == os.SCHED_BATCH
    assert os.sched_getscheduler(0) != os.SCHED_BATCH
