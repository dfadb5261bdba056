"""engine/reshard.py: every key of a store goes to the shard that must hold it, and the tally
of the source equals that of the target."""

from __future__ import annotations

import pytest

from codeq.core.model import Status
from codeq.engine import commands as c
from codeq.engine import keys
from codeq.engine.engine import Engine
from codeq.engine.reshard import (
    EVERY_SHARD,
    FOREIGN,
    RECOUNTED,
    InconsistentShardError,
    UnknownKeyError,
    rewrite,
    route,
    verify,
)
from codeq.engine.shards import key_shard, shard_of
from codeq.kv.memory import MemoryKV
from tests.support.harness import TENANT, EngineHarness

N = 3


def mixed_store() -> tuple[EngineHarness, dict[str, str]]:
    """One shard's store with tasks in every state; task id -> its status."""
    h = EngineHarness()
    for n in range(12):
        h.create(idempotency_key=f"key-{n}")
    h.create("hook", webhook="http://callbacks.invalid/done", max_attempts=1)
    h.create("doomed", max_attempts=1)
    for task in h.claim(["hook"]):
        h.complete(task.id)  # owes a callback: an outbox entry
    for task in h.claim(["doomed"]):
        h.nack(task.id)  # dead-lettered: a DLQ entry and its counter
    h.claim(["render"], count=3)
    h.kv.write({keys.topic(TENANT, "news"): b"t", keys.schedule(TENANT, "nightly"): b"p"}, sync=True)
    h.kv.write({b"raft/applied": b"\0" * 8}, sync=True)
    task_ids = list(h.engine.index.tasks)
    for key, _ in h.kv.scan(keys.FINISHED, keys.prefix_upper_bound(keys.FINISHED)):
        task_ids.append(key[len(keys.FINISHED) :].decode())
    statuses = {task_id: h.engine.find_task(task_id, TENANT).status.value for task_id in task_ids}
    return h, statuses


def test_every_key_of_a_task_follows_its_id_and_a_key_follows_the_key() -> None:
    h, _ = mixed_store()
    kinds = set()
    for key, value in h.kv.scan(b"", b"\xff"):
        shard = route(key, value, N)
        kinds.add(key[:2])
        if key[:2] == keys.IDEMPOTENCY:
            assert shard == key_shard(*keys.split_idempotency(key), N)
        elif key[:2] == keys.IDEMPOTENCY_EXPIRY:
            assert shard == key_shard(*keys.split_idempotency_expiry(key)[1:], N)
        elif key[:2] in (keys.TOPIC, keys.SCHEDULE):
            assert shard == 0
        elif key[:2] == keys.DLQ_COUNT:
            assert shard == RECOUNTED
        elif key.startswith(b"raft/"):
            assert shard == FOREIGN
        else:
            assert 0 <= shard < N
    # The store held a key of every range a task has.
    assert {keys.LIVE, keys.FINISHED, keys.RESULT, keys.RETENTION, keys.DLQ, keys.OUTBOX} <= kinds
    assert {keys.FINISHED_BY_STATE, keys.IDEMPOTENCY, keys.IDEMPOTENCY_EXPIRY, keys.DLQ_COUNT} <= kinds
    assert route(keys.FORMAT, keys.FORMAT_VERSION, N) == EVERY_SHARD


def test_a_rewrite_keeps_every_task_where_its_shard_finds_it() -> None:
    h, statuses = mixed_store()
    targets = [MemoryKV() for _ in range(N)]
    written = rewrite([h.kv], targets, drop=lambda key: key.startswith(b"raft/"))
    assert verify(targets) == written.source
    assert written.dropped == {b"raft/": 1} and written.dlq_counted == 1
    engines = [Engine(kv, h.config) for kv in targets]
    assert sum(engine.recover(h.clock.now_ms()) for engine in engines) == len(h.engine.index.tasks)
    for task_id, status in statuses.items():
        found = engines[shard_of(task_id, N)].find_task(task_id, TENANT)
        assert found.status.value == status
    dead = [t for t, s in statuses.items() if s == Status.FAILED.value]
    assert sum(engine.index.dlq_counts.get((TENANT, "doomed"), 0) for engine in engines) == len(dead) == 1
    assert all(kv.get(b"raft/applied") is None for kv in targets)


def test_a_rewrite_back_to_one_shard_gives_the_same_keys() -> None:
    h, _ = mixed_store()
    three = [MemoryKV() for _ in range(N)]
    rewrite([h.kv], three, drop=lambda key: True)
    one = MemoryKV()
    rewrite(three, [one], drop=lambda key: False)
    original = {k: v for k, v in h.kv.scan(b"", b"\xff") if not k.startswith(b"raft/")}
    assert dict(one.scan(b"", b"\xff")) == original


def test_an_unknown_key_stops_the_rewrite() -> None:
    h, _ = mixed_store()
    h.kv.write({b"Z/new-range": b"?"}, sync=True)
    with pytest.raises(UnknownKeyError):
        rewrite([h.kv], [MemoryKV(), MemoryKV()], drop=lambda key: key.startswith(b"raft/"))


def test_verify_finds_a_key_on_the_wrong_shard() -> None:
    h, _ = mixed_store()
    one = MemoryKV()
    rewrite([h.kv], [one], drop=lambda key: True)
    with pytest.raises(InconsistentShardError):
        verify([one, MemoryKV()])  # one shard's data read as the first of two


def test_a_dlq_counter_back_at_zero_is_no_inconsistency() -> None:
    h, _ = mixed_store()
    h.apply(c.DlqRequeue(now_ms=h.clock.now_ms(), tenant=TENANT, command="doomed", all=True))
    assert h.kv.get(keys.dlq_count(TENANT, "doomed")) == keys.be8(0)  # the engine keeps a 0
    verify([h.kv])
    targets = [MemoryKV() for _ in range(N)]
    written = rewrite([h.kv], targets, drop=lambda key: True)
    assert verify(targets) == written.source and written.dlq_counted == 0


def test_verify_finds_dlq_counters_that_do_not_match_the_entries() -> None:
    h, _ = mixed_store()
    h.kv.write({keys.dlq_count(TENANT, "doomed"): keys.be8(5)}, sync=True)
    with pytest.raises(InconsistentShardError):
        verify([h.kv])
    verify([h.kv], counters=False)  # a backup is taken as the server kept it
