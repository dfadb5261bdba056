"""Raft groups over real PySyncObj TCP transports (loopback, with the cluster secret), each
applying through a real engine on a memory store."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codeq.core.errors import NotLeader, OutcomeUnknown
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import Created
from codeq.kv.api import KV
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.kv.rocks import RocksKV
from codeq.replication import snapshot
from codeq.replication.group import GroupOptions, RaftGroup
from codeq.replication.journal import DurableJournal
from codeq.replication.membership import GroupMembers
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import make_conf
from codeq.replication.snapshot import APPLIED_KEY, Snapshots, read_applied
from codeq.replication.topology import GroupStatus, Topology
from tests.support.server import free_port

pytestmark = pytest.mark.timeout(60)


@dataclass
class Member:
    addr: str
    kv: KV
    journal_path: str
    committer: GroupCommitter | None = None
    engine: Engine | None = None
    group: RaftGroup | None = None
    applies: int = 0


class Cluster:
    def __init__(self, tmp: Path, size: int = 3, timeout_s: float = 10.0, rocks: bool = False) -> None:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(size)]
        self.addrs = addrs
        self.timeout_s = timeout_s
        self.tmp = tmp
        self.rocks = rocks
        self.members = [Member(a, self.store(i), str(tmp / f"journal-{i}")) for i, a in enumerate(addrs)]
        # A member's changeable membership (tests/replication/test_membership.py); None: static.
        self.membership: Callable[[Member], GroupMembers | None] = lambda member: None

    def store(self, i: int) -> KV:
        return RocksKV(str(self.tmp / f"store-{i}")) if self.rocks else MemoryKV()

    def start(self, member: Member) -> None:
        if self.rocks and getattr(member.kv, "closed", False):
            member.kv = RocksKV(member.journal_path.replace("journal", "store"))
        committer = GroupCommitter(member.kv, fsync=False)
        committer.start()
        engine = Engine(committer)
        engine.recover(0)

        def apply(command: Any) -> Any:
            member.applies += 1
            return engine.apply(command)

        snapshots = Snapshots(committer, RocksKV, member.journal_path + ".dump") if self.rocks else None

        def make_core(hook: Callable[[int, bytes], Any]) -> RaftCore:
            timing = {"raftMinTimeout": 0.3, "raftMaxTimeout": 0.6}
            conf = make_conf(secret="group-test", timing=timing, snapshots=snapshots)
            journal = DurableJournal(member.journal_path)
            members = self.membership(member)
            if members is not None and snapshots is not None:
                snapshots.roster = members
            return RaftCore(member.addr, self.addrs, conf, hook, journal, members=members)

        def restored() -> None:
            engine.recover(0)

        options = GroupOptions(
            snapshots=snapshots,
            on_restored=restored,
            encode=c.encode_command,
            decode=c.decode_command,
            leader_url=lambda addr: None if addr is None else f"http://{addr}",
            proposal_timeout_s=self.timeout_s,
        )
        member.committer, member.engine = committer, engine
        member.group = RaftGroup(make_core, apply, committer, options)
        member.group.start()

    async def stop(self, member: Member) -> None:
        if member.group is not None:
            await member.group.stop()
        if member.committer is not None:
            await member.committer.drain()
            if self.rocks:
                await member.committer.close()
                member.kv.closed = True  # type: ignore[attr-defined]
        member.group = None

    async def leader(self, deadline_s: float = 15.0) -> Member:
        return await until(
            lambda: next((m for m in self.members if m.group and m.group.is_leader), None), deadline_s
        )


async def until(probe: Callable[[], Any], deadline_s: float = 15.0) -> Any:
    """Poll a condition of real threads and sockets, with a deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not reached")


def create(n: int = 0) -> c.Create:
    return c.Create(
        now_ms=1_000 + n, task_id=str(uuid.uuid4()), tenant="acme", command="render", payload="{}"
    )


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cl = Cluster(tmp_path)
    for member in cl.members:
        cl.start(member)
    yield cl
    for member in cl.members:
        await cl.stop(member)


async def test_a_write_on_the_leader_is_applied_on_every_replica(cluster: Cluster) -> None:
    leader = await cluster.leader()
    assert leader.group is not None
    command = create()
    outcome = await leader.group.submit(command)
    assert isinstance(outcome, Created) and outcome.task.id == command.task_id
    await until(lambda: all(m.engine and command.task_id in m.engine.index.tasks for m in cluster.members))


async def test_a_follower_refuses_writes_and_names_the_leader(cluster: Cluster) -> None:
    leader = await cluster.leader()
    follower = next(m for m in cluster.members if m is not leader)
    assert follower.group is not None
    await until(lambda: follower.group and follower.group.core.leader_address == leader.addr)
    with pytest.raises(NotLeader) as info:
        await follower.group.submit(create())
    assert info.value.leader_url == f"http://{leader.addr}"


async def test_waiting_commands_share_log_entries_of_at_most_128(cluster: Cluster) -> None:
    leader = await cluster.leader()
    assert leader.group is not None
    journal = leader.group.core.journal
    before = len(journal)
    outcomes = await asyncio.gather(*(leader.group.submit(create(i)) for i in range(300)))
    assert all(isinstance(o, Created) for o in outcomes)
    entries = len(journal) - before
    assert 3 <= entries <= 20  # 300 commands: at least ceil(300/128) entries, far fewer than 300


async def test_the_applied_index_is_stored_with_the_writes_and_restart_skips_it(cluster: Cluster) -> None:
    leader = await cluster.leader()
    assert leader.group is not None
    for i in range(5):
        await leader.group.submit(create(i))
    follower = next(m for m in cluster.members if m is not leader)
    await until(lambda: follower.group and follower.group.applied == leader.group.applied)  # type: ignore[union-attr]
    await cluster.stop(follower)
    stored = read_applied(follower.committer)  # type: ignore[arg-type]
    assert follower.kv.get(APPLIED_KEY) is not None and stored >= 7
    applies_before = follower.applies
    cluster.start(follower)
    await until(lambda: follower.group and follower.group.core.applied_index >= stored)
    assert follower.applies == applies_before  # nothing re-applied from the journal


async def test_a_proposal_that_cannot_commit_times_out_as_an_unknown_outcome(tmp_path: Path) -> None:
    cl = Cluster(tmp_path, timeout_s=0.5)
    for member in cl.members:
        cl.start(member)
    try:
        leader = await cl.leader()
        assert leader.group is not None
        for member in cl.members:
            if member is not leader:
                await cl.stop(member)
        with pytest.raises(OutcomeUnknown):
            await leader.group.submit(create())
    finally:
        for member in cl.members:
            await cl.stop(member)


# PySyncObj opens the dump to stream it and never closes it (CPython closes it when collected).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_far_behind_node_catches_up_from_a_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="codeq.raft")
    cl = Cluster(tmp_path, rocks=True)
    for member in cl.members:
        cl.start(member)
    try:
        leader = await cl.leader()
        assert leader.group is not None
        first = [create(i) for i in range(20)]
        for command in first:
            await leader.group.submit(command)
        lagging = next(m for m in cl.members if m is not leader)
        await until(lambda: lagging.group and lagging.group.applied == leader.group.applied)  # type: ignore[union-attr]
        await cl.stop(lagging)
        second = [create(100 + i) for i in range(20)]
        for command in second:
            await leader.group.submit(command)
        # Compact the journals of the two running nodes past everything the lagging one holds.
        for member in cl.members:
            if member.group is not None:
                member.group.core.forceLogCompaction()
        await until(lambda: all(m.group.core.journal[0][1] > 20 for m in cl.members if m.group), 20)
        assert os.path.getsize(str(leader.journal_path) + ".dump") > 0
        cl.start(lagging)
        await until(
            lambda: lagging.engine and all(c.task_id in lagging.engine.index.tasks for c in first + second),
            20,
        )
        assert lagging.group is not None and lagging.group.failed is None
        assert lagging.kv.get(b"raft/restoring") is None
        assert "raft snapshot installed" in caplog.text
    finally:
        for member in cl.members:
            await cl.stop(member)


class Killed(Exception):
    """Stands for the process dying at this point of a snapshot install."""


# PySyncObj opens the dump to stream it and never closes it (CPython closes it when collected).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_node_that_dies_mid_snapshot_install_installs_it_again_on_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cl = Cluster(tmp_path, rocks=True)
    for member in cl.members:
        cl.start(member)
    try:
        leader = await cl.leader()
        assert leader.group is not None
        first = [create(i) for i in range(20)]
        for command in first:
            await leader.group.submit(command)
        lagging = next(m for m in cl.members if m is not leader)
        await until(lambda: lagging.group and lagging.group.applied == leader.group.applied)  # type: ignore[union-attr]
        await cl.stop(lagging)
        second = [create(100 + i) for i in range(20)]
        for command in second:
            await leader.group.submit(command)
        for member in cl.members:
            if member.group is not None:
                member.group.core.forceLogCompaction()
        await until(lambda: all(m.group.core.journal[0][1] > 20 for m in cl.members if m.group), 20)
        # The install dies after a few batches: stale keys deleted, part of the dump written.
        real_records = snapshot.read_records

        def dying_records(dump: Any) -> Any:
            for n, record in enumerate(real_records(dump)):
                if n == 10:
                    raise Killed
                yield record

        monkeypatch.setattr(snapshot, "_BATCH", 4)
        monkeypatch.setattr(snapshot, "read_records", dying_records)
        cl.start(lagging)
        await until(lambda: lagging.group and lagging.group.failed is not None, 20)
        assert lagging.kv.get(snapshot.RESTORING_KEY) is not None  # the store is incomplete
        assert lagging.group is not None and not lagging.group.is_leader
        await cl.stop(lagging)
        monkeypatch.undo()
        cl.start(lagging)  # no wiping by hand
        await until(
            lambda: lagging.engine and all(c.task_id in lagging.engine.index.tasks for c in first + second),
            20,
        )
        assert lagging.group is not None and lagging.group.failed is None
        assert lagging.kv.get(snapshot.RESTORING_KEY) is None
        assert lagging.engine is not None and leader.engine is not None
        assert set(lagging.engine.index.tasks) == set(leader.engine.index.tasks)
    finally:
        for member in cl.members:
            await cl.stop(member)


async def test_the_status_shows_the_term_and_each_voters_applied_index_as_the_leader_knows_it(
    cluster: Cluster,
) -> None:
    leader = await cluster.leader()
    assert leader.group is not None
    for i in range(3):
        await leader.group.submit(create(i))
    ids = {m.addr: f"n{i}" for i, m in enumerate(cluster.members)}
    peers = {node: addr for addr, node in ids.items()}
    http = {node: f"http://{node}.example:8080" for node in peers}
    ready = {ids[leader.addr]: True}

    def status(member: Member) -> GroupStatus:
        assert member.group is not None
        return Topology(ids[member.addr], member.addr, peers, http).status([member.group], ready.get)[0]

    last = leader.group.core.journal[-1][1]
    # Idle and caught up: every replica applied the last entry and the leader knows each holds it.
    await until(lambda: [n.applied_index for n in status(leader).nodes] == [last] * 3)
    seen = status(leader)
    assert seen.term == leader.group.core.raftCurrentTerm >= 1
    assert [(n.id, n.addr, n.http_addr) for n in seen.nodes] == [
        (node, peers[node], http[node]) for node in sorted(peers)
    ]
    assert [n.ready for n in seen.nodes] == [ready.get(node) for node in sorted(peers)]
    follower = next(m for m in cluster.members if m is not leader)
    assert follower.group is not None
    await until(lambda: follower.group and follower.group.core.applied_index == last)
    theirs = status(follower)
    assert theirs.term == seen.term and theirs.leader_id == ids[leader.addr]
    # A follower knows its own applied index only: the leader's match indexes live on the leader.
    assert {n.id: n.applied_index for n in theirs.nodes} == {
        node: last if node == ids[follower.addr] else None for node in peers
    }
