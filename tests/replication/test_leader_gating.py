"""Background work proposes commands, posts callbacks and sends notifications only while
this node holds its shard's lease, and a leadership change mid-work is not an error."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from codeq.core.clock import FakeClock
from codeq.core.errors import NotLeader, OutcomeUnknown
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.kv.memory import MemoryKV
from codeq.replication.single import SingleNode
from codeq.service.background import Runner
from codeq.service.maintenance import Maintenance
from codeq.service.node import Node, Shard
from codeq.service.waiters import Waiters
from tests.api.conftest import WORKER, make_settings, running
from tests.support.receiver import Receiver


class Recorder:
    def __init__(self, leader: bool) -> None:
        self.is_leader = leader
        self.submitted: list[Any] = []

    async def submit(self, command: Any) -> Any:
        self.submitted.append(command)
        return None


async def test_the_reaper_ticks_only_the_shards_this_node_leads() -> None:
    node = Node(Waiters())
    replicators = [Recorder(leader=True), Recorder(leader=False), Recorder(leader=True)]
    for number, replicator in enumerate(replicators):
        node.shards.append(Shard(number, Engine(MemoryKV()), replicator))
    await Maintenance(node, FakeClock()).tick()
    assert [len(r.submitted) for r in replicators] == [1, 0, 1]
    assert all(isinstance(r.submitted[0], c.Tick) for r in replicators if r.submitted)
    assert node.led_shards() == frozenset({0, 2})


# -- the lease is asked before each externally visible action, not once per tick ------------


class Lease:
    """Stands in for the Raft lease of every shard of an in-process node."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held = True
        monkeypatch.setattr(SingleNode, "is_leader", property(lambda _: self.held))


async def test_a_result_callback_is_not_posted_once_the_lease_ran_out_after_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(webhook_hmac_secret="s", webhook_allow_hosts="127.0.0.1")
    async with running(settings) as api:
        lease = Lease(monkeypatch)
        with Receiver() as receiver:
            task_id = (await api.create(webhook=receiver.url + "/hook"))["id"]
            assert (await api.claim()).json()["id"] == task_id
            done = {"status": "COMPLETED", "result": {}}
            assert (await api.post(f"/tasks/{task_id}/result", done, WORKER)).status_code == 200
            await api.app.callbacks.tick()  # picks the entry while this node still leads
            lease.held = False
            await api.app.callbacks.drain()
            assert receiver.received == []
            lease.held = True  # leading again (or the next leader): the entry is still owed
            await api.app.callbacks.tick()
            await api.app.callbacks.drain()
            assert [r.path for r in receiver.received] == ["/hook"]


async def test_a_notification_is_not_sent_once_the_lease_ran_out_after_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(webhook_hmac_secret="s", webhook_allow_hosts="127.0.0.1")
    async with running(settings) as api:
        lease = Lease(monkeypatch)
        with Receiver() as receiver:
            body = {"callbackUrl": receiver.url + "/ready", "eventTypes": ["render"], "minIntervalSeconds": 0}
            assert (await api.post("/workers/subscriptions", body, WORKER)).status_code == 200
            await api.create()
            await api.app.notifier.tick()
            lease.held = False
            await api.app.notifier.drain()
            assert receiver.received == []


class Refusing(Recorder):
    def __init__(self, error: Exception) -> None:
        super().__init__(leader=True)
        self.error = error

    async def submit(self, command: Any) -> Any:
        self.submitted.append(command)
        raise self.error


async def test_a_sweep_cut_short_by_a_leadership_change_is_counted_and_the_other_shards_still_swept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = Node(Waiters())
    replicators = [Refusing(NotLeader()), Refusing(OutcomeUnknown("lost")), Recorder(leader=True)]
    for number, replicator in enumerate(replicators):
        node.shards.append(Shard(number, Engine(MemoryKV()), replicator))
    maintenance = Maintenance(node, FakeClock())
    with caplog.at_level(logging.DEBUG):
        await maintenance.tick()
    assert [len(r.submitted) for r in replicators] == [1, 1, 1]
    assert maintenance.not_leader_refusals == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_tick_refused_with_not_leader_is_a_debug_line_and_a_counter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks: list[int] = []

    async def tick() -> int | None:
        ticks.append(1)
        if len(ticks) == 1:
            raise NotLeader()
        if len(ticks) == 2:
            raise OutcomeUnknown("leadership changed")  # a proposal that outlived the leadership
        await asyncio.Event().wait()  # the third tick parks: the test has seen what it needs
        return None

    clock = FakeClock()
    with caplog.at_level(logging.DEBUG, logger="codeq.background"):
        async with Runner("reaper", tick, clock.now_ms, interval_seconds=0.0) as runner:
            while len(ticks) < 3:
                await asyncio.sleep(0)
    assert runner.not_leader_refusals == 2
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.DEBUG, None), (logging.INFO, None)]
