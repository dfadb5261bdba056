"""A claim whose caller goes away while its write is in flight gives its tasks back."""

from __future__ import annotations

import asyncio

from codeq.auth.principal import WORKER_SCOPES, Principal
from codeq.core.clock import FakeClock
from codeq.core.model import Status
from codeq.engine.engine import Engine
from codeq.kv.commit import GroupCommitter
from codeq.replication.single import SingleNode
from codeq.service.node import Node, Shard
from codeq.service.policy import Policy
from codeq.service.tasks import NewTask, TaskService
from codeq.service.waiters import Waiters
from tests.support.gated_kv import GatedKV

PRODUCER = Principal("producer", "acme", frozenset({"codeq:produce"}), (), is_admin=False, is_worker=False)
WORKER = Principal("worker-1", "acme", frozenset(WORKER_SCOPES), ("*",), is_admin=False, is_worker=True)


async def test_a_claim_cancelled_during_its_write_releases_the_task_and_answers_nothing() -> None:
    store = GatedKV()
    committer = GroupCommitter(store, fsync=False, name="kv-release")
    committer.start()
    node = Node(Waiters())
    engine = Engine(committer)
    node.shards.append(Shard(0, engine, SingleNode(engine.apply, committer, node.publisher(engine))))
    service = TaskService(node, FakeClock(1_000_000), Policy())
    task, _ = await service.create(PRODUCER, NewTask(command="render", payload="{}"))

    store.gate.clear()
    store.entered.clear()
    claim = asyncio.ensure_future(service.claim(WORKER, None, 60, wait_seconds=5))
    await asyncio.to_thread(store.entered.wait, 5)  # the claim's lease is being written
    assert engine.find_task(task.id, "acme").status is Status.IN_PROGRESS
    claim.cancel()
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(claim, return_exceptions=True)
    assert claim.cancelled()
    await committer.drain()  # the claim's write is done: its submit ends, the release starts
    for _ in range(3):
        await asyncio.sleep(0)  # the task's end, then its done-callbacks
    await service.drain()  # the release is submitted in the background
    await committer.drain()
    released = engine.find_task(task.id, "acme")
    assert released.status is Status.PENDING and released.worker_id == ""
    again = await service.claim(WORKER, None, 60)
    assert [t.id for t in again] == [task.id]
    await committer.close()
