"""The SDK's micro-batcher: one message per loop turn, answers in order, orphans kept."""

from __future__ import annotations

import asyncio

import pytest

from codeq.client._coalesce import Coalescer


async def test_calls_in_one_turn_share_one_send() -> None:
    sent: list[list[int]] = []

    async def send_many(items: list[int]) -> list[int]:
        sent.append(items)
        return [item * 10 for item in items]

    coalescer: Coalescer[int] = Coalescer(send_many)
    answers = await asyncio.gather(*(coalescer.submit(n) for n in range(5)))
    assert answers == [0, 10, 20, 30, 40]
    assert sent == [[0, 1, 2, 3, 4]]


async def test_calls_made_while_a_send_is_in_flight_go_in_the_next_message() -> None:
    sent: list[list[str]] = []
    release = asyncio.Event()

    async def send_many(items: list[str]) -> list[str]:
        sent.append(items)
        await release.wait()
        return items

    coalescer: Coalescer[str] = Coalescer(send_many)
    first = asyncio.ensure_future(coalescer.submit("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    second = [asyncio.ensure_future(coalescer.submit(x)) for x in ("b", "c")]
    release.set()
    assert await first == "a" and [await s for s in second] == ["b", "c"]
    assert sent == [["a"], ["b", "c"]]


async def test_a_failed_send_fails_every_caller_of_that_message() -> None:
    async def send_many(items: list[int]) -> list[int]:
        raise ConnectionError("stream broke")

    coalescer: Coalescer[int] = Coalescer(send_many)
    results = await asyncio.gather(coalescer.submit(1), coalescer.submit(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_answers_of_callers_that_gave_up_go_to_the_orphan_hook() -> None:
    orphans: list[int] = []
    release = asyncio.Event()

    async def send_many(items: list[int]) -> list[int]:
        await release.wait()
        return items

    coalescer: Coalescer[int] = Coalescer(send_many, on_orphan=orphans.append)
    kept = asyncio.ensure_future(coalescer.submit(1))
    dropped = asyncio.ensure_future(coalescer.submit(2))
    await asyncio.sleep(0)
    dropped.cancel()
    release.set()
    assert await kept == 1
    with pytest.raises(asyncio.CancelledError):
        await dropped
    for _ in range(3):
        await asyncio.sleep(0)
    assert orphans == [2]
