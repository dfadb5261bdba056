"""The queue state machine through its apply path, on the memory store with a fake clock."""

from __future__ import annotations

import pytest

from codeq.core.errors import InvalidInput, NotFound, NotOwner, WrongState
from codeq.core.model import Location, Status
from codeq.engine import commands as c
from codeq.engine import keys
from tests.support.harness import TENANT, WORKER, EngineHarness


@pytest.fixture
def h() -> EngineHarness:
    return EngineHarness()


def test_create_is_ready_and_claim_leases_it(h: EngineHarness) -> None:
    created = h.create(priority=3).task
    assert created.status is Status.PENDING and created.location is Location.PENDING_LIST
    [task] = h.claim()
    assert task.id == created.id
    assert task.status is Status.IN_PROGRESS and task.location is Location.INPROG_SET
    assert task.attempts == 1 and task.worker_id == WORKER
    assert task.lease_until_ms == h.clock.now_ms() + 60_000
    assert h.claim() == []


def test_higher_priority_first_then_fifo(h: EngineHarness) -> None:
    low = h.create(priority=1).task.id
    first_high = h.create(priority=7).task.id
    h.clock.advance(ms=1)
    second_high = h.create(priority=7).task.id
    order = [h.claim()[0].id for _ in range(3)]
    assert order == [first_high, second_high, low]


@pytest.mark.parametrize("priority", [-1, 10])
def test_a_create_with_a_priority_out_of_range_is_refused_and_writes_nothing(
    h: EngineHarness, priority: int
) -> None:
    # Under Raft an apply that raised anything but a CodeqError would stop every replica.
    with pytest.raises(InvalidInput):
        h.create(priority=priority)
    assert h.claim() == [] and h.engine.index.tasks == {}


def test_claim_across_commands_merges_by_priority(h: EngineHarness) -> None:
    h.create("alpha", priority=2)
    beta = h.create("beta", priority=9).task.id
    assert h.claim(["alpha", "beta"])[0].id == beta


def test_commands_are_case_insensitive_queues(h: EngineHarness) -> None:
    created = h.create("Render").task
    [task] = h.claim(["RENDER"])
    assert task.id == created.id and task.command == "Render"


def test_wildcard_claim_sees_every_command_of_the_tenant_only(h: EngineHarness) -> None:
    h.create("other", tenant="globex")
    mine = h.create("anything").task.id
    claim = c.Claim(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, commands=None, lease_ms=1000)
    assert [t.id for t in h.apply(claim).tasks] == [mine]
    assert h.apply(claim).tasks == []


def test_delayed_task_is_claimable_only_when_due(h: EngineHarness) -> None:
    task = h.create(visible_ms=h.clock.now_ms() + 10_000).task
    assert task.location is Location.DELAYED_ZSET
    assert h.claim() == []
    h.clock.advance(10)
    assert h.claim()[0].id == task.id


def test_batch_claim_takes_up_to_count(h: EngineHarness) -> None:
    for _ in range(5):
        h.create()
    assert len(h.claim(count=3)) == 3
    assert len(h.claim(count=3)) == 2


def test_heartbeat_extends_only_for_the_owner(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    h.clock.advance(30)
    extended = h.apply(
        c.Heartbeat(
            now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=task_id, extend_ms=90_000
        )
    ).task
    assert extended.lease_until_ms == h.clock.now_ms() + 90_000
    with pytest.raises(NotOwner):
        h.apply(c.Heartbeat(now_ms=1, tenant=TENANT, worker_id="intruder", task_id=task_id, extend_ms=1))
    with pytest.raises(NotFound):
        h.apply(c.Heartbeat(now_ms=1, tenant="globex", worker_id=WORKER, task_id=task_id, extend_ms=1))
    with pytest.raises(NotFound):
        h.apply(c.Heartbeat(now_ms=1, tenant=TENANT, worker_id=WORKER, task_id="nope", extend_ms=1))


def test_heartbeat_on_a_pending_task_is_wrong_state(h: EngineHarness) -> None:
    task_id = h.create().task.id
    with pytest.raises(WrongState):
        h.apply(c.Heartbeat(now_ms=1, tenant=TENANT, worker_id=WORKER, task_id=task_id, extend_ms=1))


def test_abandon_requeues_at_the_tail_and_gives_the_attempt_back(h: EngineHarness) -> None:
    first = h.create().task.id
    h.claim()
    h.clock.advance(1)
    second = h.create().task.id
    h.clock.advance(1)
    h.apply(c.Abandon(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=first))
    assert h.engine.find_task(first, TENANT).attempts == 0
    assert [h.claim()[0].id for _ in range(2)] == [second, first]
    assert h.engine.find_task(first, TENANT).attempts == 1


def test_max_attempts_means_deliveries(h: EngineHarness) -> None:
    task_id = h.create(max_attempts=3).task.id
    for delivery in range(1, 4):
        [task] = h.claim()
        assert task.attempts == delivery
        outcome = h.nack(task_id, delay_ms=0)
    assert outcome.dead_lettered
    task = h.engine.find_task(task_id, TENANT)
    assert task.status is Status.FAILED and task.location is Location.DLQ_SET
    assert task.error == "MAX_ATTEMPTS" and task.attempts == 3
    record = h.engine.find_result(task_id)
    assert record is not None and record.status is Status.FAILED
    assert h.engine.index.dlq_counts[(TENANT, "render")] == 1


def test_nack_without_delay_uses_the_policy_and_zero_means_now(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    assert h.nack(task_id).delay_seconds == 5  # fixed policy, base 5 s
    assert h.claim() == []
    h.clock.advance(5)
    h.claim()
    assert h.nack(task_id, delay_ms=0).delay_seconds == 0
    assert h.claim()[0].id == task_id


def test_nack_reason_is_the_dead_letter_error(h: EngineHarness) -> None:
    task_id = h.create(max_attempts=1).task.id
    h.claim()
    h.nack(task_id, reason="bad input")
    assert h.engine.find_task(task_id, TENANT).error == "bad input"


def test_complete_stores_result_and_task_in_one_write(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    ops, outcome, _ = h.engine.apply(
        c.Complete(
            now_ms=h.clock.now_ms(),
            tenant=TENANT,
            worker_id=WORKER,
            task_id=task_id,
            status="COMPLETED",
            result='{"url":"s3://x"}',
        )
    )
    assert ops[keys.live(task_id)] is None
    assert ops[keys.finished(task_id)] and ops[keys.result(task_id)]
    h.kv.write(ops, sync=True)
    assert outcome.record.result == '{"url":"s3://x"}'
    task = h.engine.find_task(task_id, TENANT)
    assert task.status is Status.COMPLETED and task.has_result and task.worker_id == ""


def test_a_finished_task_never_comes_back(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    h.complete(task_id)
    with pytest.raises(WrongState):
        h.complete(task_id)
    with pytest.raises(WrongState):
        h.nack(task_id)
    h.clock.advance(3600)
    h.tick()
    assert h.claim() == []
    h.restart()
    assert h.claim() == []
    assert h.engine.find_task(task_id, TENANT).status is Status.COMPLETED


def test_failed_by_worker_is_terminal_but_not_dead_lettered(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    h.complete(task_id, status="FAILED", result="", error="boom")
    task = h.engine.find_task(task_id, TENANT)
    assert task.status is Status.FAILED and task.location is Location.NONE and task.error == "boom"


def test_expired_lease_is_retried_with_backoff(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim(lease_ms=1000)
    h.clock.advance(1)
    swept = h.tick()
    assert swept.expired == 1 and swept.dead_lettered == 0
    task = h.engine.find_task(task_id, TENANT)
    assert task.status is Status.PENDING and task.location is Location.DELAYED_ZSET
    h.clock.advance(5)
    assert h.claim()[0].attempts == 2


def test_expired_last_lease_dead_letters(h: EngineHarness) -> None:
    task_id = h.create(max_attempts=1).task.id
    h.claim(lease_ms=1000)
    h.clock.advance(2)
    assert h.tick().dead_lettered == 1
    task = h.engine.find_task(task_id, TENANT)
    assert task.location is Location.DLQ_SET and task.error == "LEASE_EXPIRED"


def test_a_heartbeat_supersedes_the_old_lease(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim(lease_ms=1000)
    h.apply(
        c.Heartbeat(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=task_id, extend_ms=5000)
    )
    h.clock.advance(2)
    assert h.tick().expired == 0
    h.clock.advance(4)
    assert h.tick().expired == 1


def test_idempotency_is_per_tenant(h: EngineHarness) -> None:
    first = h.create(idempotency_key="job-1").task
    replay = h.create(idempotency_key="job-1")
    assert replay.replay and replay.task.id == first.id
    other = h.create(idempotency_key="job-1", tenant="globex")
    assert not other.replay and other.task.id != first.id


def test_idempotent_replay_returns_the_current_state(h: EngineHarness) -> None:
    first = h.create(idempotency_key="job-1").task
    h.claim()
    replay = h.create(idempotency_key="job-1")
    assert replay.task.id == first.id and replay.task.status is Status.IN_PROGRESS


def test_idempotency_key_expires(h: EngineHarness) -> None:
    first = h.create(idempotency_key="job-1").task
    h.clock.advance(86_400)
    fresh = h.create(idempotency_key="job-1")
    assert not fresh.replay and fresh.task.id != first.id
    h.tick()
    assert h.kv.get(keys.idempotency(TENANT, "job-1")) is not None  # re-pointed, still live


def test_idempotency_keys_are_removed_after_their_ttl(h: EngineHarness) -> None:
    h.create(idempotency_key="job-1")
    h.clock.advance(86_401)
    assert h.tick().idempotency_keys_expired == 1
    assert h.kv.get(keys.idempotency(TENANT, "job-1")) is None


def test_a_batch_sees_its_own_idempotency_keys(h: EngineHarness) -> None:
    now = h.clock.now_ms()
    items = [
        c.Create(
            now_ms=now, task_id=h.new_id(), tenant=TENANT, command="render", payload="1", idempotency_key="k"
        )
        for _ in range(2)
    ]
    outcome = h.apply(c.Batch(now_ms=now, items=items))
    first, second = outcome.items
    assert not first.replay and second.replay and second.task.id == first.task.id


def test_retention_removes_finished_tasks_but_never_live_ones(h: EngineHarness) -> None:
    done = h.create().task.id
    live = h.create(visible_ms=h.clock.now_ms() + 10 * 86_400_000).task.id
    h.claim()
    h.complete(done)
    h.clock.advance(86_400)
    assert h.tick().deleted == 1
    with pytest.raises(NotFound):
        h.engine.find_task(done, TENANT)
    assert h.engine.find_result(done) is None
    assert h.engine.find_task(live, TENANT).status is Status.PENDING


def test_retention_of_dead_letters_updates_the_dlq_count(h: EngineHarness) -> None:
    task_id = h.create(max_attempts=1).task.id
    h.claim()
    h.nack(task_id)
    assert h.engine.index.dlq_counts[(TENANT, "render")] == 1
    h.clock.advance(86_400)
    h.tick()
    assert h.engine.index.dlq_counts[(TENANT, "render")] == 0
    assert list(h.kv.scan(keys.DLQ, keys.DLQ_COUNT)) == []


def test_cleanup_removes_up_to_limit(h: EngineHarness) -> None:
    for _ in range(3):
        task_id = h.create().task.id
        h.claim()
        h.complete(task_id)
    outcome = h.apply(c.Cleanup(now_ms=h.clock.now_ms(), before_ms=h.clock.now_ms() + 86_400_000, limit=2))
    assert outcome.deleted == 2


def test_recovery_rebuilds_the_same_queues(h: EngineHarness) -> None:
    ids = [h.create(priority=p % 3).task.id for p in range(6)]
    h.create(visible_ms=h.clock.now_ms() + 5000)
    h.claim()
    task_id = h.create(max_attempts=1, priority=9).task.id
    assert h.claim()[0].id == task_id
    h.nack(task_id)
    before = {k: (q.ready, q.delayed, q.in_progress) for k, q in h.engine.index.queues.items()}
    order_before = _drain_order(h)
    h.restart()
    after = {k: (q.ready, q.delayed, q.in_progress) for k, q in h.engine.index.queues.items()}
    assert after == before
    assert h.engine.index.dlq_counts == {(TENANT, "render"): 1}
    assert _drain_order(h) == order_before
    assert set(order_before) <= set(ids)


def _drain_order(h: EngineHarness) -> list[str]:
    """Claim everything ready, record the order, then restore by restarting from the store."""
    snapshot = dict(h.kv._data)
    order = []
    while tasks := h.claim():
        order.append(tasks[0].id)
    h.kv._data = snapshot
    h.kv._keys = sorted(snapshot)
    h.restart()
    return order


def test_restart_keeps_in_flight_leases_and_their_deadlines(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim(lease_ms=5000)
    assert h.restart() == 1
    h.clock.advance(6)
    assert h.tick().expired == 1
    assert h.engine.find_task(task_id, TENANT).status is Status.PENDING


def test_commands_round_trip_through_their_encoding() -> None:
    command = c.Nack(now_ms=1, tenant="t", worker_id="w", task_id="x", delay_ms=None, reason="r", jitter=0.25)
    assert c.decode_command(c.encode_command(command)) == command


def test_may_have_ready_tells_when_a_claim_could_succeed(h: EngineHarness) -> None:
    assert not h.engine.may_have_ready(TENANT, ["render"], h.clock.now_ms())
    h.create(visible_ms=h.clock.now_ms() + 1000)
    assert not h.engine.may_have_ready(TENANT, ["render"], h.clock.now_ms())
    h.clock.advance(1)
    assert h.engine.may_have_ready(TENANT, ["render"], h.clock.now_ms())
    h.claim()
    h.create("other")
    assert not h.engine.may_have_ready(TENANT, ["render"], h.clock.now_ms())
    assert h.engine.may_have_ready(TENANT, None, h.clock.now_ms())
    assert not h.engine.may_have_ready("globex", None, h.clock.now_ms())
