"""The group committer: shared writes, read-your-writes overlay, durability before answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from codeq.core.errors import StorageError
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from tests.support.gated_kv import GatedKV


@pytest.fixture
def kv() -> Iterator[GatedKV]:
    store = GatedKV()
    yield store
    store.gate.set()


async def test_concurrent_submitters_share_one_write(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    kv.gate.clear()
    first = committer.submit({b"a": b"1"})
    await asyncio.to_thread(kv.entered.wait, 5)  # the writer took the first batch and is blocked
    rest = [committer.submit({f"k{i}".encode(): b"v"}) for i in range(50)]
    kv.gate.set()
    await asyncio.gather(first, *rest)
    assert kv.batches == [1, 50]
    assert kv.syncs == 2
    await committer.close()


async def test_writes_are_readable_before_they_are_durable(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    kv.gate.clear()
    done = committer.submit({b"a": b"1", b"gone": None})
    assert committer.get(b"a") == b"1"
    assert kv.get(b"a") is None
    assert not done.done()
    kv.gate.set()
    await done
    assert kv.get(b"a") == b"1"
    await committer.close()


async def test_scan_merges_the_overlay(kv: GatedKV) -> None:
    kv.write({b"x1": b"old", b"x2": b"keep", b"x3": b"drop"}, sync=True)
    committer = GroupCommitter(kv)
    committer.start()
    kv.gate.clear()
    pending = committer.submit({b"x1": b"new", b"x3": None, b"x4": b"add"})
    assert list(committer.scan(b"x", b"y")) == [(b"x1", b"new"), (b"x2", b"keep"), (b"x4", b"add")]
    assert list(committer.scan(b"x", b"y", limit=2)) == [(b"x1", b"new"), (b"x2", b"keep")]
    assert list(committer.scan_reverse(b"x", b"y")) == [(b"x4", b"add"), (b"x2", b"keep"), (b"x1", b"new")]
    assert list(committer.scan_reverse(b"x", b"y", limit=2)) == [(b"x4", b"add"), (b"x2", b"keep")]
    assert list(committer.scan_reverse(b"x2", b"x3")) == [(b"x2", b"keep")]
    kv.gate.set()
    await pending
    await committer.close()


async def test_a_failed_write_fails_its_waiters_and_refuses_more(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    kv.fail = True
    with pytest.raises(StorageError):
        await committer.submit({b"a": b"1"})
    assert committer.failed
    with pytest.raises(StorageError):
        await committer.submit({b"b": b"1"})
    kv.fail = False
    await committer.close()


async def test_fsync_off_still_writes_but_never_syncs(kv: GatedKV) -> None:
    committer = GroupCommitter(kv, fsync=False)
    committer.start()
    await committer.submit({b"a": b"1"})
    assert kv.get(b"a") == b"1" and kv.syncs == 0
    await committer.close()


async def test_close_writes_what_is_pending_and_closes_the_store(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    pending = committer.submit({b"a": b"1"})
    await committer.close()
    assert pending.done() and kv.get(b"a") == b"1" and kv.closed


async def test_room_is_limited_by_pending_bytes(kv: GatedKV) -> None:
    committer = GroupCommitter(kv, max_pending_bytes=10)
    committer.start()
    kv.gate.clear()
    first = committer.submit({b"a": b"1"})
    await asyncio.to_thread(kv.entered.wait, 5)
    second = committer.submit({b"big": b"0123456789"})
    waiting = asyncio.ensure_future(committer.wait_for_room())
    await asyncio.sleep(0)
    assert not waiting.done()
    kv.gate.set()
    await asyncio.gather(first, second, waiting)
    await committer.close()


class Published:
    """What the committer published, how many batches were durable at that moment, and which
    of the `submitters` had been answered."""

    def __init__(self, kv: GatedKV, submitters: list[asyncio.Future[None]]) -> None:
        self.kv, self.submitters = kv, submitters
        self.calls: list[tuple[list[object], int, list[bool]]] = []

    def __call__(self, events: object) -> None:
        assert isinstance(events, list)
        answered = [future.done() for future in self.submitters]
        self.calls.append((list(events), len(self.kv.batches), answered))


async def test_a_batch_publishes_its_events_once_durable_in_one_call_before_any_answer(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    kv.gate.clear()
    first = committer.submit({b"a": b"1"}, ["a1"])
    await asyncio.to_thread(kv.entered.wait, 5)  # the first batch is in the writer, blocked
    rest = [committer.submit({b"b": b"1"}, ["b1", "b2"]), committer.submit({b"c": b"1"}, [])]
    rest.append(committer.submit({b"d": b"1"}, ["d1"]))
    published = Published(kv, [first, *rest])
    committer.publish_to(published)
    assert published.calls == []  # nothing is published before its batch is durable
    kv.gate.set()
    await asyncio.gather(first, *rest)
    # One call per batch, events in submit order, each after its write and before its answers.
    assert published.calls == [
        (["a1"], 1, [False, False, False, False]),
        (["b1", "b2", "d1"], 2, [True, False, False, False]),
    ]
    await committer.close()


async def test_a_batch_with_no_events_is_still_published_but_raft_writes_are_not(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    published = Published(kv, [])
    committer.publish_to(published)
    await committer.submit({b"a": b"1"}, ())  # a write that may have moved the next due time
    await committer.submit({b"b": b"1"})  # no publishing asked (a Raft replica's apply)
    assert published.calls == [([], 1, [])]
    await committer.close()


async def test_a_submitter_that_goes_away_loses_neither_its_write_nor_its_events(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    published = Published(kv, [])
    committer.publish_to(published)
    kv.gate.clear()
    waiting = asyncio.ensure_future(committer.submit({b"a": b"1"}, ["a1"]))
    await asyncio.to_thread(kv.entered.wait, 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    kv.gate.set()
    await committer.drain()
    assert kv.get(b"a") == b"1"
    assert published.calls == [(["a1"], 1, [])]
    await committer.close()


async def test_a_failed_write_publishes_nothing(kv: GatedKV) -> None:
    committer = GroupCommitter(kv)
    committer.start()
    published = Published(kv, [])
    committer.publish_to(published)
    kv.fail = True
    with pytest.raises(StorageError):
        await committer.submit({b"a": b"1"}, ["a1"])
    assert published.calls == []
    kv.fail = False
    await committer.close()


class CountingKV(MemoryKV):
    """A memory store that counts the point reads reaching it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        self.reads += len(keys)
        return super().get_many(keys)


async def test_recently_durable_values_are_read_without_reaching_the_store() -> None:
    store = CountingKV()
    committer = GroupCommitter(store)
    committer.start()
    await committer.submit({b"task": b"created", b"gone": b"x"})
    await committer.submit({b"task": b"claimed", b"gone": None})
    assert committer.get(b"task") == b"claimed"
    assert committer.get(b"gone") is None
    assert committer.get_many([b"task", b"gone"]) == [b"claimed", None]
    assert store.reads == 0
    assert committer.get(b"never-written") is None
    assert store.reads == 1
    await committer.close()


async def test_remembered_values_are_bounded_and_never_stale() -> None:
    store = CountingKV()
    committer = GroupCommitter(store, recent_bytes=100)
    committer.start()
    await committer.submit({b"a": b"1" * 40})
    for n in range(10):  # enough batches to push `a` out of both generations
        await committer.submit({b"k%d" % n: b"v" * 40})
    assert committer.get(b"a") == b"1" * 40
    assert store.reads == 1  # forgotten, so read from the store
    await committer.submit({b"k9": b"small"})
    await committer.submit({b"k9": b"big" * 100, b"other": b"x"})  # over the bound: not kept
    assert committer.get(b"k9") == b"big" * 100  # not the smaller value remembered before it
    assert store.reads == 2
    await committer.close()


async def test_remembering_can_be_turned_off() -> None:
    store = CountingKV()
    committer = GroupCommitter(store, recent_bytes=0)
    committer.start()
    await committer.submit({b"a": b"1"})
    assert committer.get(b"a") == b"1"
    assert store.reads == 1
    await committer.close()
