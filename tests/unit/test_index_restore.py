"""A restart's index (issue 18): the live tasks placed and ordered as their creates left them,
whatever the order the store yields them in and however their sequence numbers are spread."""

from __future__ import annotations

import random

import msgspec
import pytest

from codeq.core.model import Status
from codeq.engine.index import PRIORITIES, Index, Live
from codeq.engine.listing import DELAYED, IN_PROGRESS, READY
from codeq.engine.records import Placement

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
    stored = [placement(i, seq, rng) for i, seq in enumerate(seqs(spread, 3_000, rng))]
    rng.shuffle(stored)
    index = Index()

    assert index.restore(stored, NOW) == max(p.seq for p in stored)
    index.settle()

    assert len(index.tasks) == len(stored)
    for queue in index.queues.values():
        for state, entries in queue.listed.items():
            assert [key(e) for e in entries] == sorted(key(e) for e in entries)
            assert all(index.tasks[e.id] is e and e.state == state for e in entries)
        ready = queue.listed[READY]
        assert queue.ready == len(ready) and queue.delayed == len(queue.listed[DELAYED])
        for priority in range(PRIORITIES):
            heap = queue.heaps[priority]
            assert heap == [e for e in ready if e.priority == priority]
            assert queue.ready_by_priority[priority] == len(heap)
    expected_ready = {p.id for p in stored if p.status is Status.PENDING and p.visible_ms <= NOW}
    assert {e.id for q in index.queues.values() for e in q.listed[READY]} == expected_ready
    assert len(index.leases) == index.leased == sum(p.status is Status.IN_PROGRESS for p in stored)


def test_the_claim_order_after_a_restart_is_priority_then_readiness_then_sequence() -> None:
    rng = random.Random(5)
    stored = [placement(i, seq, rng) for i, seq in enumerate(seqs("dense", 2_000, rng))]
    rng.shuffle(stored)
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
    ready = {p.id for p in stored if p.command == "render" and p.status is Status.PENDING and p.visible_ms <= NOW}
    assert {t.id for t in taken} == ready
    assert queue.ready == 0
