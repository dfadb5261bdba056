"""Peers compare the backup `codeq cluster init` made their data from, like their shard count."""

from __future__ import annotations

from codeq.replication.raft import RaftCore
from tests.replication.handnet import ADDRS, HandNetwork

A, B, C = ADDRS


def start(net: HandNetwork, addr: str, origin: str) -> RaftCore:
    core = net.start(addr, shape="shards=1").core
    assert isinstance(core, RaftCore)
    core.set_origin(origin)  # as RaftGroup does from the store
    return core


def test_a_node_initialised_from_another_backup_is_ignored_and_reported() -> None:
    net = HandNetwork()
    a = start(net, A, "backup-1")
    b = start(net, B, "backup-1")
    odd = start(net, C, "backup-2")
    net.settle()
    problem = odd.shape_problem()
    assert problem is not None and "same backup" in problem and "backup-1" in problem
    assert a.shape_problem() is None and C in a.shape_conflicts and C in b.shape_conflicts
    net.elect(A)
    assert not odd.is_leader and net.leader() is net.replicas[A]


def test_a_node_without_an_origin_agrees_with_any() -> None:
    net = HandNetwork()
    a = start(net, A, "backup-1")
    start(net, B, "backup-1")
    fresh = start(net, C, "")  # a replacement node, started empty: it takes the leader's data
    net.settle()
    assert fresh.shape_problem() is None and not fresh.shape_conflicts and not a.shape_conflicts
