"""Fenced leases in the engine: every claim has its own token; stale ones are refused."""

from __future__ import annotations

import msgspec
import pytest

from codeq.core.errors import NotOwner, StaleLease, WrongState
from codeq.core.model import Status, Task
from codeq.engine import commands as c
from codeq.engine import keys, records
from tests.support.harness import TENANT, WORKER, EngineHarness


@pytest.fixture
def h() -> EngineHarness:
    return EngineHarness()


def _heartbeat(h: EngineHarness, task_id: str, token: int, worker: str = WORKER) -> c.Heartbeat:
    return c.Heartbeat(
        now_ms=h.clock.now_ms(),
        tenant=TENANT,
        worker_id=worker,
        task_id=task_id,
        extend_ms=1000,
        lease_token=token,
    )


def test_every_claim_gets_a_new_token_even_when_abandon_gives_the_attempt_back(h: EngineHarness) -> None:
    task_id = h.create().task.id
    [first] = h.claim()
    h.apply(c.Abandon(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=task_id))
    [second] = h.claim()
    assert first.attempts == second.attempts == 1
    assert (first.lease_epoch, second.lease_epoch) == (1, 2)


def test_a_stale_token_is_refused_and_changes_nothing(h: EngineHarness) -> None:
    task_id = h.create().task.id
    [first] = h.claim(lease_ms=1000)
    h.clock.advance(2)
    h.tick()  # the lease expires: back to the queue after the 5 s backoff
    h.clock.advance(6)
    [second] = h.claim(lease_ms=60_000)  # the same worker id claims it again
    before = records.encode_task(h.engine.find_task(task_id, TENANT))
    for command in (
        _heartbeat(h, task_id, first.lease_epoch),
        c.Nack(
            now_ms=h.clock.now_ms(),
            tenant=TENANT,
            worker_id=WORKER,
            task_id=task_id,
            delay_ms=0,
            lease_token=1,
        ),
        c.Abandon(now_ms=h.clock.now_ms(), tenant=TENANT, worker_id=WORKER, task_id=task_id, lease_token=1),
        c.Complete(
            now_ms=h.clock.now_ms(),
            tenant=TENANT,
            worker_id=WORKER,
            task_id=task_id,
            status="COMPLETED",
            lease_token=1,
        ),
    ):
        with pytest.raises(StaleLease):
            h.apply(command)
    assert records.encode_task(h.engine.find_task(task_id, TENANT)) == before
    h.complete(task_id, lease_token=second.lease_epoch)
    assert h.engine.find_task(task_id, TENANT).status is Status.COMPLETED


def test_without_a_token_the_owner_check_alone_answers_as_before(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    with pytest.raises(NotOwner) as refused:
        h.apply(_heartbeat(h, task_id, 0, worker="someone-else"))
    assert not isinstance(refused.value, StaleLease)
    h.apply(_heartbeat(h, task_id, 0))
    h.complete(task_id)
    with pytest.raises(WrongState):
        h.apply(_heartbeat(h, task_id, 0))
    with pytest.raises(StaleLease):  # with a token, a finished task is a lost lease
        h.apply(_heartbeat(h, task_id, 1))


def test_the_current_token_of_another_worker_is_still_not_theirs(h: EngineHarness) -> None:
    task_id = h.create().task.id
    [task] = h.claim()
    with pytest.raises(NotOwner):
        h.apply(_heartbeat(h, task_id, task.lease_epoch, worker="someone-else"))


def test_the_token_survives_a_restart(h: EngineHarness) -> None:
    task_id = h.create().task.id
    [task] = h.claim()
    h.restart()
    assert h.engine.find_task(task_id, TENANT).lease_epoch == task.lease_epoch
    h.apply(_heartbeat(h, task_id, task.lease_epoch))


def test_records_written_before_fencing_decode_with_epoch_zero(h: EngineHarness) -> None:
    task_id = h.create().task.id
    h.claim()
    raw = h.kv.get(keys.live(task_id))
    assert raw is not None
    # The record as it was before fenced leases: without lease_epoch and the fields after it.
    old = msgspec.msgpack.encode(msgspec.msgpack.decode(raw)[:20])  # up to finished_ms
    task = records.decode_task(old)
    assert isinstance(task, Task) and task.lease_epoch == 0 and task.status is Status.IN_PROGRESS
    # Such a lease is still acted on without a token (the owner check), as before.
    h.kv.write({keys.live(task_id): old}, sync=True)
    h.restart()
    h.apply(_heartbeat(h, task_id, 0))
    assert h.engine.find_task(task_id, TENANT).lease_epoch == 0


def test_commands_written_before_fencing_decode_without_a_token() -> None:
    command = c.Heartbeat(now_ms=1, tenant=TENANT, worker_id=WORKER, task_id="t", extend_ms=5, lease_token=9)
    fields = msgspec.msgpack.decode(c.encode_command(command))
    old = c.decode_command(msgspec.msgpack.encode(fields[:-1]))
    assert isinstance(old, c.Heartbeat) and old.lease_token == 0 and old.extend_ms == 5
