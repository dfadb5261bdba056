"""A restart's index (issue 18): the live tasks placed and ordered as their creates left them,
whatever the order the store yields them in and however their sequence numbers are spread."""

from __future__ import annotations

import random

import msgspec
import pytest

from codeq.core.model import Status
from codeq.engine.index import PRIORITIES, Index, Live, position
from codeq.engine.listing import DELAYED, IN_PROGRESS, READY, PageQuery
from codeq.engine.records import Placement
from tests.support.harness import TENANT, EngineHarness

NOW = 1_800_000_000_000
_NO = msgspec.Raw(msgspec.msgpack.encode(""))


def placement(i: int, seq: int, rng: random.Random) -> Placement:
    created = NOW - 100_000 + seq // 3  # creates share a millisecond now and then
    state = rng.choice([READY] * 6 + [DELAYED, IN_PROGRESS])
    visible = NOW + rng.randrange(1, 9_000) if state is DELAYED else rng.choice([0, created + 50])
    return Placement(
        id=f"t{i:07d}",
        tenant="acme",
        command=rng.choice(["render", "mail"]),
        payload=_NO,
        priority=rng.randrange(PRIORITIES),
        webhook="",
        status=Status.IN_PROGRESS if state is IN_PROGRESS else Status.PENDING,
        location="",
        attempts=0,
        max_attempts=5,
        created_ms=created,
        updated_ms=created + rng.randrange(0, 3),
        visible_ms=visible,
        seq=seq,
        worker_id="",
        lease_until_ms=NOW + 60_000 if state is IN_PROGRESS else 0,
    )


def seqs(spread: str, n: int, rng: random.Random) -> list[int]:
    if spread == "dense":
        return list(range(7, 7 + n))
    if spread == "sparse":
        return rng.sample(range(1, 20 * n), n)
    return [s for s in range(1, n // 2 + 1) for _ in (0, 1)]  # two old shards merged by a reshard


def key(live: Live) -> tuple[int, int]:
    return (live.order_ms, live.seq)


@pytest.mark.parametrize("spread", ["dense", "sparse", "duplicated"])
def test_a_restart_orders_every_listing_and_heap_whatever_the_scan_order(spread: str) -> None:
    rng = random.Random(spread)
    numbers = seqs(spread, 3_000, rng)
    rng.shuffle(numbers)  # the store yields tasks by id, which says nothing of their seq
    stored = [placement(i, seq, rng) for i, seq in enumerate(numbers)]
    index = Index()

    assert index.restore(stored, NOW) == max(p.seq for p in stored)
    index.settle()

    assert len(index.tasks) == len(stored)
    for queue in index.queues.values():
        ready = queue.listed[READY]
        assert queue.ready == len(ready) and queue.delayed == len(queue.listed[DELAYED])
        for priority in range(PRIORITIES):
            heap = queue.heaps[priority]
            assert sorted(heap) == sorted(e for e in ready if e.priority == priority)
            assert all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap)))  # a heap
            assert queue.ready_by_priority[priority] == len(heap)
        for state, entries in queue.listed.items():
            page = index.listed(PageQuery("acme", queue.cmd_key, state, None, False, 10_000))
            assert page == sorted(position(e) for e in entries)
            assert [key(e) for e in entries] == sorted(key(e) for e in entries)  # sorted in place
            assert all(index.tasks[e.id] is e and e.state == state for e in entries)
    expected_ready = {p.id for p in stored if p.status is Status.PENDING and p.visible_ms <= NOW}
    assert {e.id for q in index.queues.values() for e in q.listed[READY]} == expected_ready
    assert len(index.leases) == index.leased == sum(p.status is Status.IN_PROGRESS for p in stored)


def test_the_claim_order_after_a_restart_is_priority_then_readiness_then_sequence() -> None:
    rng = random.Random(5)
    numbers = seqs("dense", 2_000, rng)
    rng.shuffle(numbers)
    stored = [placement(i, seq, rng) for i, seq in enumerate(numbers)]
    index = Index()
    index.restore(stored, NOW)
    index.settle()
    queue = index.queue("acme", "render")

    taken = []
    while (live := index.head(queue)) is not None:
        index.take(live)
        del index.tasks[live.id]  # as a claim that completes at once
        taken.append(live)

    assert taken == sorted(taken, key=lambda e: (-e.priority, e.order_ms, e.seq))
    ready = [p for p in stored if p.status is Status.PENDING and p.visible_ms <= NOW]
    assert {t.id for t in taken} == {p.id for p in ready if p.command == "render"}
    assert queue.ready == 0


def test_tasks_placed_after_a_restart_are_listed_in_order_with_the_restored_ones() -> None:
    h = EngineHarness()
    # ids in the reverse of creation order: the store yields them last created first
    created = [h.create(task_id=f"00000000-0000-4000-8000-{999 - i:012d}").task for i in range(40)]
    delayed = h.create(visible_ms=h.clock.now_ms() + 5_000).task
    h.restart()
    h.clock.advance(10)
    created += [h.create().task for _ in range(3)]
    (first,) = h.claim()
    h.clock.advance(5_000)
    h.tick()  # the delayed task becomes ready: it ranks by when it became claimable

    ready = h.engine.index.listed(PageQuery(TENANT, "render", READY, None, False, 100))
    left = [t for t in created if t.id != first.id]
    expected = sorted(
        [(t.ready_ms, t.seq, t.id) for t in left] + [(delayed.ready_ms, delayed.seq, delayed.id)]
    )
    assert ready == expected
