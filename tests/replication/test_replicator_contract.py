"""One contract for every Replicator: single node, and a one-voter Raft group over PySyncObj."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from codeq.core.errors import CodeqError, NotFound
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import BatchApplied, Created
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.replication.api import Replicator
from codeq.replication.group import GroupOptions, RaftGroup
from codeq.replication.journal import DurableJournal
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import make_conf
from codeq.replication.single import SingleNode
from tests.support.server import free_port

pytestmark = pytest.mark.timeout(30)


class Setup:
    def __init__(
        self, replicator: Replicator, engine: Engine, kv: MemoryKV, committer: GroupCommitter, raft: bool
    ) -> None:
        self.replicator, self.engine, self.kv = replicator, engine, kv
        self.committer, self.raft = committer, raft

    async def stored(self) -> None:
        """Under Raft an answer means the entry is durable in the journal of a majority; its
        store write follows from the committer. Single-node answers only once it is in the store."""
        if self.raft:
            await self.committer.drain()


@pytest.fixture(params=["single", "raft"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    kv = MemoryKV()
    committer = GroupCommitter(kv, fsync=False)
    committer.start()
    engine = Engine(committer)
    group = None
    if request.param == "single":
        replicator: Replicator = SingleNode(engine.apply, committer)
    else:
        addr = f"127.0.0.1:{free_port()}"

        def make_core(hook: Callable[[int, bytes], Any]) -> RaftCore:
            conf = make_conf(secret="contract", timing={"raftMinTimeout": 0.2, "raftMaxTimeout": 0.4})
            return RaftCore(addr, [addr], conf, hook, DurableJournal(str(tmp_path / "journal")))

        options = GroupOptions(encode=c.encode_command, decode=c.decode_command, leader_url=lambda a: None)
        group = RaftGroup(make_core, engine.apply, committer, options)
        group.start()
        deadline = time.monotonic() + 10
        while not group.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # a one-voter group elects itself after one timeout
        replicator = group
    yield Setup(replicator, engine, kv, committer, raft=group is not None)
    if group is not None:
        await group.stop()
    await committer.close()


def create(**fields: Any) -> c.Create:
    return c.Create(now_ms=1, task_id=str(uuid.uuid4()), tenant="t", command="render", payload="{}", **fields)


async def test_an_applied_command_answers_its_outcome_once_durable(setup: Setup) -> None:
    assert setup.replicator.is_leader
    command = create()
    outcome = await setup.replicator.submit(command)
    assert isinstance(outcome, Created) and outcome.task.id == command.task_id
    await setup.stored()
    assert any(key.endswith(command.task_id.encode()) for key, _ in setup.kv.scan(b"", b"\xff"))


async def test_a_rejected_command_raises_and_writes_nothing(setup: Setup) -> None:
    await setup.replicator.submit(create())
    await setup.stored()
    before = dict(setup.kv.scan(b"L/", b"L0"))
    heartbeat = c.Heartbeat(now_ms=2, tenant="t", worker_id="w", task_id=str(uuid.uuid4()), extend_ms=1000)
    with pytest.raises(NotFound):
        await setup.replicator.submit(heartbeat)
    await setup.stored()
    assert dict(setup.kv.scan(b"L/", b"L0")) == before


async def test_a_batch_gives_each_item_its_own_outcome(setup: Setup) -> None:
    unknown = c.Complete(now_ms=1, tenant="t", worker_id="w", task_id=str(uuid.uuid4()), status="COMPLETED")
    batch = c.Batch(now_ms=1, items=[create(idempotency_key="k"), unknown])
    outcome = await setup.replicator.submit(batch)
    assert isinstance(outcome, BatchApplied)
    assert isinstance(outcome.items[0], Created) and isinstance(outcome.items[1], CodeqError)


async def test_concurrent_submitters_each_get_their_own_outcome(setup: Setup) -> None:
    commands = [create() for _ in range(50)]
    outcomes = await asyncio.gather(*(setup.replicator.submit(cmd) for cmd in commands))
    assert [o.task.id for o in outcomes] == [cmd.task_id for cmd in commands]
