"""Payloads stay on disk (issue 18): the index holds a task's place, the store its record."""

from __future__ import annotations

import asyncio
import dataclasses

from codeq.engine import commands as c
from codeq.engine import keys, listing, records
from codeq.engine.engine import Engine
from codeq.engine.index import Live
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from tests.support.harness import TENANT, WORKER, EngineHarness


def test_the_index_entry_of_a_task_holds_no_payload() -> None:
    h = EngineHarness()
    task = h.create(payload='{"big":"' + "x" * 1000 + '"}').task
    live = h.engine.index.tasks[task.id]
    assert type(live) is Live
    assert set(Live._fields) == {"order_ms", "seq", "id", "queue", "state", "priority"}
    assert all(not (isinstance(value, str) and "x" * 1000 in value) for value in live)


def test_a_claim_returns_the_payload_the_store_holds_not_a_copy_in_memory() -> None:
    h = EngineHarness()
    task = h.create(payload='{"v":1}').task
    # Change the stored record under the engine's feet: a claim must read it from the store.
    stored = records.decode_task(h.kv.get(keys.live(task.id)) or b"")
    h.kv.write(
        {keys.live(task.id): records.encode_task(dataclasses.replace(stored, payload='{"v":2}'))}, sync=True
    )
    (claimed,) = h.claim()
    assert claimed.payload == '{"v":2}'
    assert h.engine.find_task(task.id, TENANT).payload == '{"v":2}'


def _positions(engine: Engine) -> dict[str, list[tuple[int, int, str]]]:
    query = {
        state: listing.PageQuery(TENANT, "render", state, None, False, 100) for state in listing.LIVE_STATES
    }
    return {state: engine.index.listed(q) for state, q in query.items()}


def test_a_restart_places_every_task_where_it_stood_and_claims_them_with_their_payloads() -> None:
    h = EngineHarness()
    low = h.create(payload='{"n":1}', priority=1).task
    h.clock.advance(1)
    high = h.create(payload='{"n":2}', priority=5).task
    leased = h.create(payload='{"n":3}', priority=9).task
    assert [t.id for t in h.claim()] == [leased.id]
    h.create(payload='{"n":4}', visible_ms=h.clock.now_ms() + 60_000)
    before = _positions(h.engine)
    counts = {k: (q.ready, q.delayed, q.in_progress) for k, q in h.engine.index.queues.items()}
    assert h.restart() == 4
    assert _positions(h.engine) == before
    assert {k: (q.ready, q.delayed, q.in_progress) for k, q in h.engine.index.queues.items()} == counts
    claimed = h.claim(count=3)
    assert [(t.id, t.payload) for t in claimed] == [(high.id, '{"n":2}'), (low.id, '{"n":1}')]


def test_a_claim_of_a_task_not_yet_durable_reads_its_payload_through_the_commit_overlay() -> None:
    async def scenario() -> list[str]:
        kv = MemoryKV()
        committer = GroupCommitter(kv)
        committer.start()
        engine = Engine(committer)
        now = 1_000
        durable = c.Create(now_ms=now, task_id="t-1", tenant=TENANT, command="render", payload='{"d":1}')
        pending = c.Create(now_ms=now, task_id="t-2", tenant=TENANT, command="render", payload='{"d":2}')
        await committer.submit(engine.apply(durable)[0])
        committer.submit(engine.apply(pending)[0])  # staged, not yet written to the store
        assert kv.get(keys.live("t-2")) is None
        claim = c.Claim(
            now_ms=now, tenant=TENANT, worker_id=WORKER, commands=["render"], lease_ms=1000, count=2
        )
        ops, outcome, _ = engine.apply(claim)
        committer.submit(ops)
        await committer.close()
        return [task.payload for task in outcome.tasks]

    assert asyncio.run(scenario()) == ['{"d":1}', '{"d":2}']


def test_finished_tasks_do_not_linger_in_the_lease_heap_until_their_lease_deadline() -> None:
    h = EngineHarness()
    for _ in range(1_000):
        task = h.create().task
        (claimed,) = h.claim(lease_ms=3_600_000)
        assert claimed.id == task.id
        h.complete(task.id)
    index = h.engine.index
    assert index.leased == 0
    assert len(index.leases) <= 256 + 1  # compacted, not one entry per task finished


def test_a_drain_without_new_tasks_does_not_keep_every_claimed_task_in_the_ready_listing() -> None:
    h = EngineHarness()
    for _ in range(3_000):
        h.create()
    for _ in range(2_900):
        (claimed,) = h.claim()
        h.complete(claimed.id)
    queue = next(iter(h.engine.index.queues.values()))
    assert queue.ready == 100
    # Compacted as tasks leave it, not only when a new one arrives (issue 18 item 4).
    assert len(queue.listed[listing.READY]) <= 3 * 100 + 256
    page = h.engine.index.listed(listing.PageQuery(TENANT, queue.cmd_key, listing.READY, None, False, 1_000))
    assert len(page) == 100
