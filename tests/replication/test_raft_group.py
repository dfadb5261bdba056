"""Raft groups over real PySyncObj TCP transports (loopback, with the cluster secret), each
applying through a real engine on a memory store."""

from __future__ import annotations

import asyncio
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
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.replication.group import APPLIED_KEY, GroupOptions, RaftGroup, read_applied
from codeq.replication.raft import DurableJournal, RaftCore, make_conf
from tests.support.server import free_port

pytestmark = pytest.mark.timeout(60)


@dataclass
class Member:
    addr: str
    kv: MemoryKV
    journal_path: str
    committer: GroupCommitter | None = None
    engine: Engine | None = None
    group: RaftGroup | None = None
    applies: int = 0


class Cluster:
    def __init__(self, tmp: Path, size: int = 3, timeout_s: float = 10.0) -> None:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(size)]
        self.addrs = addrs
        self.timeout_s = timeout_s
        self.members = [Member(a, MemoryKV(), str(tmp / f"journal-{i}")) for i, a in enumerate(addrs)]

    def start(self, member: Member) -> None:
        committer = GroupCommitter(member.kv, fsync=False)
        committer.start()
        engine = Engine(committer)
        engine.recover(0)

        def apply(command: Any) -> Any:
            member.applies += 1
            return engine.apply(command)

        def make_core(hook: Callable[[int, bytes], Any]) -> RaftCore:
            conf = make_conf(secret="group-test", timing={"raftMinTimeout": 0.3, "raftMaxTimeout": 0.6})
            return RaftCore(member.addr, self.addrs, conf, hook, DurableJournal(member.journal_path))

        options = GroupOptions(
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
