"""Raft with a process per shard (ADR 0009): two processes' halves in one event loop over a
real Unix socket; one follows the other's Raft group (routing, readiness, transfer-leader)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from codeq.app.shard_raft import GroupSnapshot, PeerGroups, RaftRemoteShard, own_group_reads
from codeq.auth.principal import Principal
from codeq.cluster.remote import PeerLink
from codeq.cluster.server import ShardServer
from codeq.core.clock import FakeClock
from codeq.core.errors import InvalidInput, NotLeader
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.shards import key_shard, new_task_id, shard_of
from codeq.kv.memory import MemoryKV
from codeq.replication.membership import Member
from codeq.service.membership import MemberRequest, MembershipOutcome, MembershipService
from codeq.service.node import Node, Shard
from codeq.service.policy import Policy
from codeq.service.shard_reads import READS
from codeq.service.tasks import NewTask, TaskService
from codeq.service.waiters import Waiters

OPERATOR = Principal("ops", "acme", frozenset({"codeq:operator"}), (), is_admin=True, is_worker=False)
PRODUCER = Principal("producer", "acme", frozenset({"codeq:produce"}), (), is_admin=False, is_worker=False)
LEADER_URL = "http://node-b:8080"
STREAMS = {"worker": "grpc://node-b:9091"}
NOW_MS = 1_767_225_600_000


def task_on(shard: int) -> str:
    return next(t for t in (new_task_id(2) for _ in range(100)) if shard_of(t, 2) == shard)


class Group:
    """Stands in for a shard's Raft group: leads or refuses as a follower does."""

    def __init__(self, engine: Engine, leads: bool) -> None:
        self.engine = engine
        self.leads = leads

    @property
    def is_leader(self) -> bool:
        return self.leads

    async def submit(self, command: Any) -> Any:
        if not self.leads:
            raise NotLeader(LEADER_URL, leader_streams=STREAMS)
        return command.expects(self.engine.apply(command)[1])


class Owner:
    """The process owning shard 1: serves its group's state and transfer-leader."""

    def __init__(self, tmp_path: Path) -> None:
        engine = Engine(MemoryKV())
        self.group = Group(engine, leads=False)
        self.problem = ""
        self.shard = Shard(1, engine, self.group)  # type: ignore[arg-type]  # a stand-in replicator
        reads = {name: functools.partial(self.shard.read, name) for name in READS}
        self.changes: list[MemberRequest] = []
        reads |= own_group_reads(self.snapshot, self.transfer, self.change)
        self.server = ShardServer(f"unix:{tmp_path}/shard1.sock", self.shard, reads)

    def snapshot(self) -> GroupSnapshot:
        leader = None if self.group.leads else "node-b:7001"
        return GroupSnapshot(self.group.leads, leader, 1, 3, 7, {}, self.problem)

    async def transfer(self, shard: int, to: str) -> str:
        if not self.group.leads:
            raise NotLeader(LEADER_URL, leader_streams=STREAMS)
        self.group.leads = False
        return to

    async def change(self, request: MemberRequest) -> MembershipOutcome:
        if not self.group.leads:
            raise NotLeader(LEADER_URL, leader_streams=STREAMS)
        self.changes.append(request)
        return MembershipOutcome(request.shard, request.op, request.node or "d", ["a", "b", "c", "d"], "even")


@pytest.fixture
async def linked(tmp_path: Path) -> AsyncIterator[tuple[Node, Owner, PeerGroups]]:
    owner = Owner(tmp_path)
    await owner.server.start()
    node = Node(Waiters())
    own = Engine(MemoryKV())
    node.shards.append(Shard(0, own, Group(own, leads=False)))  # type: ignore[arg-type]
    remote = RaftRemoteShard(1, PeerLink(owner.server.address, lambda *ready: None))
    remote.link.start()
    node.shards.append(remote)
    peers = PeerGroups({1: remote})
    while not remote.link.connected:
        await asyncio.sleep(0.01)  # the link connects in the background
    try:
        yield node, owner, peers
    finally:
        await remote.link.close()
        await owner.server.close()


async def test_another_process_shard_counts_as_led_only_while_its_group_leads(
    linked: tuple[Node, Owner, PeerGroups],
) -> None:
    node, owner, peers = linked
    assert not node.shards[1].is_leader and peers.waiting() == "waiting for the raft state of shard 1"
    assert peers.problem(1) is None  # it said nothing yet
    await peers.refresh()
    assert peers.waiting() is None and peers.problem(1) is None and not node.shards[1].is_leader
    assert node.led_shards() == frozenset()  # neither group leads here
    owner.group.leads = True
    await peers.refresh()
    # The own shard is not led here, the other process's is: creates go there, forwarded.
    assert node.shards[1].is_leader and node.led_shards() == frozenset({1})
    tasks = TaskService(node, FakeClock(), Policy())
    task, _ = await tasks.create(PRODUCER, NewTask(command="render", payload="{}"))
    assert shard_of(task.id, 2) == 1
    assert peers.view(1).term == 3
    owner.problem = "shard 1 has no known raft leader"
    await peers.refresh()
    assert peers.problem(1) == "shard 1 has no known raft leader"  # as that process says it


async def test_a_command_forwarded_to_a_group_that_does_not_lead_names_that_shards_leader(
    linked: tuple[Node, Owner, PeerGroups],
) -> None:
    node, _, _ = linked
    tasks = TaskService(node, FakeClock(), Policy())
    key = next(k for k in (f"key-{n}" for n in range(100)) if key_shard("acme", k, 2) == 1)
    with pytest.raises(NotLeader) as refused:
        await tasks.create(PRODUCER, NewTask(command="render", payload="{}", idempotency_key=key))
    assert refused.value.leader_url == LEADER_URL and refused.value.leader_streams == STREAMS


async def test_transfer_leader_runs_in_the_process_of_the_shards_group(
    linked: tuple[Node, Owner, PeerGroups],
) -> None:
    _, owner, peers = linked
    with pytest.raises(NotLeader) as refused:
        await peers.transfer_leader(1, "c")
    assert refused.value.leader_url == LEADER_URL
    owner.group.leads = True
    assert await peers.transfer_leader(1, "c") == "c"
    assert not owner.group.leads


async def test_a_claim_is_sent_to_the_leader_of_another_process_shard_only_where_a_task_waits(
    linked: tuple[Node, Owner, PeerGroups],
) -> None:
    node, owner, peers = linked
    await peers.refresh()  # neither group leads on this node
    claim = c.Claim(
        now_ms=NOW_MS, tenant="acme", worker_id="w", commands=["render"], lease_ms=60_000, count=1
    )
    # Nothing ready in the other process's replica: skipped, as a follower's replica in one process.
    assert (await node.shards[1].submit(claim)).tasks == []
    owner.group.leads = True
    await owner.shard.submit(
        c.Create(now_ms=NOW_MS, tenant="acme", task_id=task_on(1), command="render", payload="{}")
    )
    owner.group.leads = False
    with pytest.raises(NotLeader) as refused:  # a task waits there: the worker goes to its leader
        await node.shards[1].submit(claim)
    assert refused.value.leader_url == LEADER_URL


async def test_a_membership_change_of_another_process_shard_is_made_in_that_process(
    linked: tuple[Node, Owner, PeerGroups],
) -> None:
    _, owner, peers = linked
    service = MembershipService({}, "a", 2, elsewhere=peers.change_members)  # shard 1 runs there
    d = Member("d", "10.0.0.4:7000", "http://10.0.0.4:8080", {"worker": "grpc://10.0.0.4:9091"})
    with pytest.raises(NotLeader) as refused:  # that group is led by another node: the 307's URL
        await service.add(OPERATOR, 1, d, force=True)
    assert refused.value.leader_url == LEADER_URL
    owner.group.leads = True
    outcome = await service.add(OPERATOR, 1, d, force=True)
    assert outcome == MembershipOutcome(1, "add", "d", ["a", "b", "c", "d"], "even")
    assert owner.changes == [MemberRequest(1, "add", True, member=d)]  # the member crossed whole
    await service.remove(OPERATOR, 1, "c", force=False)
    assert owner.changes[-1] == MemberRequest(1, "remove", False, node="c")
    with pytest.raises(InvalidInput, match=r"shard must be 0\.\.1"):
        await service.add(OPERATOR, 2, d, force=True)
