"""Background work proposes commands only on the shards this node leads."""

from __future__ import annotations

from typing import Any

from codeq.core.clock import FakeClock
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.kv.memory import MemoryKV
from codeq.service.maintenance import Maintenance
from codeq.service.node import Node, Shard
from codeq.service.waiters import Waiters


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
