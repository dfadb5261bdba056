"""The design D4 workarounds, each pinned on hand-delivered messages (no sockets, no timers)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from codeq.core.errors import CodeqError, InvalidInput
from codeq.replication.journal import DurableJournal, MemoryTestJournal
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import BaseCore, ReplicaFailed, make_conf
from tests.replication.handnet import ADDRS, QUIET, HandNetwork, Message

A, B, C = ADDRS


def to(dst: str) -> Any:
    return lambda m: m.dst == dst


def propose(net: HandNetwork, addr: str, payload: bytes, acked: list[bytes]) -> None:
    def done(result: Any, error: CodeqError | None) -> None:
        if error is None:
            acked.append(payload)

    net.replicas[addr].core.propose(payload, done)


def lose_acknowledged_entries(core_class: type[BaseCore]) -> tuple[list[bytes], list[bytes]]:
    """Leader A replicates to B only (C is cut off) and acknowledges 30 entries. One delayed
    duplicate of an early append reaches B, then A dies and B leads with C. Returns the
    acknowledged payloads and the payloads C (which only ever learns from B) ends up applying."""
    net = HandNetwork(core_class)
    for addr in ADDRS:
        net.start(addr)
    net.elect(A)
    net.cut |= {frozenset((A, C)), frozenset((B, C))}
    acked: list[bytes] = []
    duplicates: list[Message] = []
    for i in range(30):
        propose(net, A, b"op-%d" % i, acked)
        net.tick(A)
        duplicates += [Message(m.src, m.dst, dict(m.body)) for m in net.queue if m.dst == B]
        net.settle()
    assert len(acked) == 30
    # A delayed copy of the first append (a retransmission after a reconnect, say).
    net.queue = [duplicates[0]]
    net.deliver()
    net.kill(A)
    net.cut.clear()
    net.elect(B)
    net.settle()
    applied = [payload for _, payload in net.replicas[C].applied]
    return acked, applied


def test_no_acknowledged_entry_is_lost_when_the_leader_dies() -> None:
    acked, applied = lose_acknowledged_entries(RaftCore)
    assert [p for p in acked if p not in applied] == []


def test_unpatched_pysyncobj_loses_acknowledged_entries() -> None:
    """Why RaftCore exists. If this starts failing, upstream changed the follower's truncation:
    re-read the fixes in replication/raft.py against the new version before upgrading."""
    acked, applied = lose_acknowledged_entries(BaseCore)
    assert len([p for p in acked if p not in applied]) >= 20


def three(core_class: type[BaseCore] = RaftCore) -> HandNetwork:
    net = HandNetwork(core_class)
    for addr in ADDRS:
        net.start(addr)
    net.elect(A)
    return net


def journal_of(net: HandNetwork, addr: str) -> list[tuple[bytes, int, int]]:
    journal = net.replicas[addr].core.journal
    return [journal[i] for i in range(len(journal))]


def test_follower_truncates_only_on_a_term_conflict() -> None:
    net = three()
    acked: list[bytes] = []
    for i in range(3):
        propose(net, A, b"x%d" % i, acked)
        net.settle()
    follower = net.replicas[B].core
    before = journal_of(net, B)
    term = follower.raftCurrentTerm
    stale = {"type": "append_entries", "term": term, "commit_index": 1, "prevLogIdx": 1, "prevLogTerm": 0}
    stale["entries"] = [before[1]]
    net.transports[B]._onMessageReceived(net.transports[B].nodes[A], stale)
    assert journal_of(net, B) == before
    # A conflicting entry (another term at the same index) does replace the tail.
    last = before[-1]
    conflict = dict(stale, term=term + 1, prevLogIdx=last[1] - 1, prevLogTerm=before[-2][2])
    conflict["entries"] = [(b"\x10other", last[1], term + 1)]
    follower.journal.setRaftCommitIndex(1)
    follower._SyncObj__raftCommitIndex = last[1] - 1
    net.transports[B]._onMessageReceived(net.transports[B].nodes[A], conflict)
    assert journal_of(net, B) == [*before[:-1], (b"\x10other", last[1], term + 1)]


def test_follower_commits_no_further_than_the_last_entry_it_received() -> None:
    net = three()
    follower = net.replicas[B].core
    term = follower.raftCurrentTerm
    last = journal_of(net, B)[-1]
    # A leftover entry from this term that the leader never confirmed to B.
    follower.journal.add(b"\x10leftover", last[1] + 1, term)
    heartbeat = {
        "type": "append_entries",
        "term": term,
        "commit_index": last[1] + 5,
        "prevLogIdx": last[1],
        "prevLogTerm": last[2],
        "entries": [],
    }
    net.transports[B]._onMessageReceived(net.transports[B].nodes[A], heartbeat)
    assert follower.raftCommitIndex == last[1]
    net.tick(B)
    assert b"leftover" not in b"".join(p for _, p in net.replicas[B].applied)


@pytest.mark.parametrize(("core_class", "moved_back"), [(RaftCore, False), (BaseCore, True)])
def test_leader_never_moves_next_index_below_what_a_follower_holds(
    core_class: type[BaseCore], moved_back: bool
) -> None:
    net = three(core_class)
    acked: list[bytes] = []
    for i in range(3):
        propose(net, A, b"y%d" % i, acked)
        net.settle()
    leader = net.replicas[A].core
    node_b = net.transports[A].nodes[B]
    held = leader._SyncObj__raftMatchIndex[node_b]
    stale = {"type": "next_node_idx", "next_node_idx": 2, "reset": True, "success": False}
    net.transports[A]._onMessageReceived(node_b, stale)
    assert (leader._SyncObj__raftNextIndex[node_b] <= held) is moved_back


def test_follower_flushes_its_journal_before_it_acknowledges() -> None:
    net = three()
    acked: list[bytes] = []
    journal = net.journals[B]
    before = journal.flushes
    propose(net, A, b"z", acked)
    net.tick(A)
    seen: list[int] = []
    original = net.transports[B].send

    def send(node: Any, message: Any) -> bool:
        if message["type"] == "next_node_idx":
            seen.append(journal.flushes)
        return bool(original(node, message))

    net.transports[B].send = send  # type: ignore[method-assign]
    net.deliver(to(B))
    assert seen and seen[0] == before + 1


def test_leader_flushes_its_journal_in_the_tick_that_appends() -> None:
    net = three()
    journal = net.journals[A]
    before = journal.flushes
    propose(net, A, b"w", [])
    net.tick(A)
    assert journal.flushes == before + 1
    net.tick(A)
    assert journal.flushes == before + 1  # nothing new appended: no flush


def restart_ex_leader(core_class: type[BaseCore]) -> tuple[HandNetwork, int, list[bytes]]:
    """A leads, appends three entries nobody receives, dies; B leads and commits three more.
    A restarts and times out twice while still cut off, then the network heals and it times
    out once more. Returns the network, B's term before the restart, and what was acked."""
    net = three(core_class)
    acked: list[bytes] = []
    propose(net, A, b"before", acked)
    net.settle()
    net.cut |= {frozenset((A, B)), frozenset((A, C))}
    for i in range(3):
        propose(net, A, b"unreplicated-%d" % i, acked)
        net.tick(A)
    net.kill(A)
    net.cut.clear()
    net.elect(B)
    for i in range(3):
        propose(net, B, b"after-%d" % i, acked)
        net.settle()
    term = net.replicas[B].core.raftCurrentTerm
    net.cut |= {frozenset((A, B)), frozenset((A, C))}
    restarted = net.start(A, net.journals[A])
    for _ in range(2):
        restarted.core._SyncObj__raftElectionDeadline = 0
        net.tick(A)
        net.tick(A)
    net.cut.clear()
    net._connect(A, B)
    net._connect(A, C)
    restarted.core._SyncObj__raftElectionDeadline = 0
    net.settle()
    return net, term, acked


def test_restarted_ex_leader_catches_up_without_deposing_the_leader() -> None:
    net, term, acked = restart_ex_leader(RaftCore)
    assert b"after-2" in acked
    assert net.replicas[B].core.is_leader and net.replicas[B].core.raftCurrentTerm == term
    assert journal_of(net, A) == journal_of(net, B)
    applied_a = [p for _, p in net.replicas[A].applied]
    assert b"after-2" in applied_a and not any(p.startswith(b"unreplicated") for p in applied_a)


def test_unpatched_restarted_ex_leader_deposes_the_leader() -> None:
    net, term, _ = restart_ex_leader(BaseCore)
    assert net.replicas[B].core.raftCurrentTerm > term


def single(hook: Any) -> RaftCore:
    from tests.replication.handnet import HandTransport

    transport = type("Solo", (HandTransport,), {"network": HandNetwork()})
    conf = make_conf(secret="s", timing=QUIET)
    conf.password = None
    core = RaftCore(A, [A], conf, hook, MemoryTestJournal(), transport_class=transport)
    core._SyncObj__raftElectionDeadline = 0
    for _ in range(3):
        core.tick()
    assert core.is_leader
    return core


def test_a_failed_apply_stops_the_replica_and_is_never_retried() -> None:
    calls: list[int] = []

    def hook(index: int, payload: bytes) -> Any:
        calls.append(index)
        raise ValueError("disk on fire")

    core = single(hook)
    core.propose(b"boom", lambda result, error: None)
    core.run_ticks(threading.Event(), wait_seconds=0.0)  # returns: the replica stopped
    assert len(calls) == 1
    assert isinstance(core.failure, ValueError)
    with pytest.raises(ReplicaFailed):
        core._SyncObj__doApplyCommand(b"\x10again")


def test_a_failing_callback_never_applies_an_entry_twice() -> None:
    calls: list[int] = []
    core = single(lambda index, payload: calls.append(index))

    def callback(result: Any, error: Any) -> None:
        raise RuntimeError("bridge broke")

    core.propose(b"once", callback)
    for _ in range(5):
        core.tick()
    assert len(calls) == 1


def test_the_cluster_secret_is_mandatory() -> None:
    with pytest.raises(InvalidInput) as info:
        make_conf(secret="")
    assert info.value.field == "raft.secret"
    assert make_conf(secret="s").password == "s"


def test_a_cut_off_leader_steps_down_after_the_fallback_timeout() -> None:
    assert make_conf(secret="s").leaderFallbackTimeout == 2.0
    net = three()
    leader = net.replicas[A].core
    leader._SyncObj__lastResponseTime.update(dict.fromkeys(leader._SyncObj__lastResponseTime, 0.0))
    leader.conf.leaderFallbackTimeout = 2.0
    net.tick(A)
    assert not leader.is_leader


def test_a_peer_with_another_shard_count_is_ignored_and_reported() -> None:
    net = HandNetwork()
    a = net.start(A, shape="shards=1")
    b = net.start(B, shape="shards=1")
    odd = net.start(C, shape="shards=2")
    net.settle()
    assert isinstance(odd.core, RaftCore) and isinstance(a.core, RaftCore)
    problem = odd.core.shape_problem()
    assert problem is not None and "same numShards" in problem  # it cannot reach a majority
    assert a.core.shape_problem() is None and C in a.core.shape_conflicts  # a and b still can
    net.elect(A)
    acked: list[bytes] = []
    propose(net, A, b"x", acked)
    net.settle()
    assert acked == [b"x"] and b.applied[-1][1] == b"x" and not odd.applied


def test_journal_compaction_is_a_rename_and_survives_reopening(tmp_path: Any) -> None:
    path = str(tmp_path / "journal")
    journal = DurableJournal(path)
    for index in range(1, 11):
        journal.add(b"\x10entry-%d" % index, index, 1)
    journal.flush()
    journal.deleteEntriesTo(6)  # keep entries 7..10
    journal.add(b"\x10entry-11", 11, 2)
    journal.flush()
    kept = [journal[i] for i in range(len(journal))]
    assert [e[1] for e in kept] == [7, 8, 9, 10, 11]
    journal._destroy()
    reopened = DurableJournal(path)
    assert [reopened[i] for i in range(len(reopened))] == kept
    assert not (tmp_path / "journal.compacting").exists()
    reopened._destroy()


def test_the_journal_counts_the_entry_bytes_it_holds_in_memory(tmp_path: Any) -> None:
    journal = DurableJournal(str(tmp_path / "journal"))
    for index in range(1, 11):
        journal.add(b"\x10" + b"x" * 99, index, 1)
    assert journal.held_bytes == 1000
    journal.deleteEntriesFrom(8)  # a conflict truncates the tail
    assert journal.held_bytes == 800
    journal.deleteEntriesTo(3)  # a compaction drops the head
    assert journal.held_bytes == 500
    journal._destroy()
    reopened = DurableJournal(str(tmp_path / "journal"))
    assert reopened.held_bytes == 500
    reopened.clear()
    assert reopened.held_bytes == 0
    reopened._destroy()


def test_a_journal_over_its_memory_limit_is_compacted_early() -> None:
    net = three()
    leader = net.replicas[A].core
    assert isinstance(leader, RaftCore)
    leader.max_journal_bytes = 1000  # as with snapshots configured (here there are none)
    net.journals[A].held_bytes = 999  # type: ignore[attr-defined]
    net.tick(A)
    assert not leader._SyncObj__forceLogCompaction
    net.journals[A].held_bytes = 1001  # type: ignore[attr-defined]
    net.tick(A)
    assert leader._SyncObj__forceLogCompaction
