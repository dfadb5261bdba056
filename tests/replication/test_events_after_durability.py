"""Events reach listeners only after the writes are durable, and a failing listener is contained:
it stops neither the next command nor the replica (single node and a one-voter Raft group)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from codeq.auth.principal import SCOPE_RESULT, Principal
from codeq.core.clock import FakeClock
from codeq.engine import commands as c
from codeq.engine import keys
from codeq.engine.engine import Engine
from codeq.engine.outcomes import Event, Finished
from codeq.kv.api import Ops
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.observability.metrics import Metrics
from codeq.replication.group import GroupOptions, RaftGroup
from codeq.replication.journal import DurableJournal
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import make_conf
from codeq.replication.single import SingleNode
from codeq.service.node import Node, Shard
from codeq.service.policy import Policy
from codeq.service.results import ResultService
from codeq.service.waiters import Waiters
from tests.support.server import free_port

pytestmark = pytest.mark.timeout(30)

WORKER = Principal("w", "t", frozenset({SCOPE_RESULT}), ("*",), is_admin=False, is_worker=True)


class GatedKV(MemoryKV):
    """A store whose writes wait for `gate` once `hold` is set: a write stuck in its fsync."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.gate = threading.Event()

    def write(self, ops: Ops, *, sync: bool) -> None:
        if self.hold:
            self.gate.wait(10)
        super().write(ops, sync=sync)


class Cluster:
    """One node with one shard over a real engine and group committer."""

    def __init__(self, node: Node, engine: Engine, kv: GatedKV, group: RaftGroup | None) -> None:
        self.node, self.engine, self.kv, self.group = node, engine, kv, group

    @property
    def shard(self) -> Shard:
        return self.node.shards[0]


@pytest.fixture(params=["single", "raft"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running(request.param, tmp_path) as each:
        yield each


@pytest.fixture
async def single(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Single-node mode, where a write is durable once the store's write returned. (Under Raft
    the fsynced journal makes it durable and the store write may lag: not what is gated here.)"""
    async with running("single", tmp_path) as each:
        yield each


@asynccontextmanager
async def running(mode: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    kv = GatedKV()
    committer = GroupCommitter(kv, fsync=False)
    committer.start()
    engine = Engine(committer)
    node = Node(Waiters(), Metrics())
    group = None
    if mode == "single":
        replicator: Any = SingleNode(engine.apply, committer, node.publisher(engine))
    else:
        addr = f"127.0.0.1:{free_port()}"

        def make_core(hook: Callable[[int, bytes], Any]) -> RaftCore:
            conf = make_conf(secret="events", timing={"raftMinTimeout": 0.2, "raftMaxTimeout": 0.4})
            return RaftCore(addr, [addr], conf, hook, DurableJournal(str(tmp_path / "journal")))

        options = GroupOptions(encode=c.encode_command, decode=c.decode_command, leader_url=lambda a: None)
        group = RaftGroup(make_core, engine.apply, committer, options, node.publisher(engine))
        group.start()
        deadline = time.monotonic() + 10
        while not group.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # a one-voter group elects itself after one timeout
        replicator = group
    node.shards.append(Shard(0, engine, replicator))
    yield Cluster(node, engine, kv, group)
    kv.gate.set()
    if group is not None:
        await group.stop()
    await committer.close()


def create(task_id: str = "") -> c.Create:
    return c.Create(
        now_ms=1, task_id=task_id or str(uuid.uuid4()), tenant="t", command="render", payload="{}"
    )


def claim() -> c.Claim:
    return c.Claim(now_ms=2, tenant="t", worker_id="w", commands=["render"], lease_ms=60_000)


def complete(task_id: str) -> c.Complete:
    return c.Complete(now_ms=3, tenant="t", worker_id="w", task_id=task_id, status="COMPLETED", result="{}")


async def test_a_listener_that_raises_stops_neither_the_next_command_nor_the_replica(
    cluster: Cluster,
) -> None:
    heard: list[Event] = []

    def broken(events: Sequence[Event], next_due_ms: int | None) -> None:
        raise RuntimeError("observer bug")

    def recorder(events: Sequence[Event], next_due_ms: int | None) -> None:
        heard.extend(events)

    cluster.node.listen("broken", broken)
    cluster.node.listen("recorder", recorder)
    first = await cluster.shard.submit(create())
    second = await cluster.shard.submit(create())
    assert first.task.id != second.task.id
    assert cluster.shard.replicator.is_leader
    if cluster.group is not None:
        assert cluster.group.failed is None
    # The listener after the broken one still heard both creates, and the failures were counted.
    created = [e for e in heard if getattr(e, "kind", "") == "created"]
    assert [e.task.id for e in created] == [first.task.id, second.task.id]  # type: ignore[union-attr]
    metrics = cluster.node.metrics
    assert metrics is not None
    errors = metrics.registry.get_sample_value("codeq_event_listener_errors_total", {"listener": "broken"})
    assert errors is not None and errors >= 2


async def test_a_long_poll_result_read_returns_only_once_the_result_is_durable(single: Cluster) -> None:
    cluster = single
    task_id = (await cluster.shard.submit(create())).task.id
    await cluster.shard.submit(claim())
    results = ResultService(cluster.node, FakeClock(), Policy())
    reader = asyncio.ensure_future(results.get(WORKER, task_id, wait_seconds=20))
    for _ in range(5):
        await asyncio.sleep(0)  # let the reader register its waiter
    assert not reader.done()
    cluster.kv.hold = True  # the completion's write now hangs in the store
    finishing = asyncio.ensure_future(cluster.shard.submit(complete(task_id)))
    for _ in range(50):
        await asyncio.sleep(0)  # the apply runs, the write is stuck: the reader must still wait
    assert cluster.kv.get(keys.result(task_id)) is None
    assert not reader.done()
    cluster.kv.gate.set()
    task, record = await asyncio.wait_for(reader, 10)
    assert record.status.value == "COMPLETED" and task.id == task_id
    assert cluster.kv.get(keys.result(task_id)) is not None  # on disk before the reader saw it
    await asyncio.wait_for(finishing, 10)


async def test_a_rejected_command_raises_no_event(cluster: Cluster) -> None:
    heard: list[Event] = []
    cluster.node.listen("recorder", lambda events, due: heard.extend(events))
    with pytest.raises(Exception, match="not-found"):
        await cluster.shard.submit(complete(str(uuid.uuid4())))
    assert not [e for e in heard if isinstance(e, Finished)]
