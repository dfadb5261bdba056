"""The leader lease (replication/lease.py) on hand-delivered messages and a fake lease clock:
a cut-off leader stops counting as leader before the others can elect a new one."""

from __future__ import annotations

from codeq.replication.raft import RaftCore
from tests.replication.handnet import ADDRS, HandNetwork

A, B, C = ADDRS
LEASE, QUIET_S = 0.4, 0.5  # leaderLeaseMS and electionMS (the shortest election timeout)


def cluster() -> HandNetwork:
    net = HandNetwork()
    for addr in ADDRS:
        net.start(addr)
    net.elect(A)
    for replica in net.replicas.values():
        core = replica.core
        assert isinstance(core, RaftCore)
        core.lease_s, core.quiet_s = LEASE, QUIET_S
    net.settle()  # one heartbeat round acked at the current (fake) time
    return net


def core(net: HandNetwork, addr: str) -> RaftCore:
    found = net.replicas[addr].core
    assert isinstance(found, RaftCore)
    return found


def isolate(net: HandNetwork, addr: str) -> None:
    net.cut |= {frozenset((addr, other)) for other in ADDRS if other != addr}


def test_a_leader_holds_the_lease_only_once_the_entry_of_its_term_is_applied() -> None:
    net = HandNetwork()
    for addr in ADDRS:
        net.start(addr)
    net.time += 2000
    core(net, A)._SyncObj__raftElectionDeadline = 0
    net.settle(keep=lambda m: m.body.get("type") != "append_entries")  # votes only: no append yet
    assert core(net, A).is_leader and not core(net, A).holds_lease
    net.settle()
    assert core(net, A).holds_lease


def test_a_cut_off_leader_loses_the_lease_and_steps_down_before_another_can_be_elected() -> None:
    net = cluster()
    isolate(net, A)
    net.time += LEASE - 0.01
    net.tick()
    assert core(net, A).holds_lease  # a majority acked an append sent less than a lease ago
    # B times out and asks C, which heard from A too recently to help elect another leader.
    core(net, B)._start_pre_vote()
    net.deliver()  # the request
    net.deliver()  # any grant
    assert not core(net, B)._campaign_approved
    net.time += 0.02  # the lease is over: A no longer acts as leader, and gives the role up
    assert not core(net, A).holds_lease
    net.tick(A)
    assert not core(net, A).is_leader
    net.time += QUIET_S - LEASE  # only now may C help B: A stepped down a while ago
    core(net, B)._start_pre_vote()
    net.settle()
    assert core(net, B).holds_lease and not core(net, A).is_leader


def test_the_lease_runs_from_when_the_append_was_sent_not_when_its_ack_arrived() -> None:
    net = cluster()
    net.time += 0.1
    net.heartbeat()
    net.tick(A)  # the heartbeat leaves A at t
    net.time += 0.3  # and its acks come back 0.3 s later
    net.deliver()
    net.deliver()
    leader = core(net, A)
    assert abs(leader.lease_until - (net.time - 0.3 + LEASE)) < 1e-9


def test_a_dropped_connection_to_the_leader_does_not_let_a_follower_grant_a_pre_vote_early() -> None:
    """Before the lease, a follower whose connection to the leader dropped granted pre-votes
    at once, so a majority could elect a new leader while the old one still served reads."""
    net = cluster()
    net.cut |= {frozenset((A, C)), frozenset((A, B))}
    transport = net.transports[C]
    transport._onNodeDisconnected(transport.nodes[A])
    net.time += 0.1
    core(net, B)._start_pre_vote()
    net.settle()
    assert not core(net, B).is_leader and core(net, A).holds_lease


def test_a_restarted_follower_waits_an_election_timeout_before_helping_elect_another_leader() -> None:
    net = cluster()
    net.kill(C)
    net.start(C)
    core(net, C).quiet_s = QUIET_S
    net.cut |= {frozenset((A, B)), frozenset((A, C))}
    core(net, B)._start_pre_vote()
    net.deliver()  # the request
    net.deliver()  # any grant
    assert not core(net, B)._campaign_approved  # A may still hold a lease on C's last ack


def test_handing_over_gives_the_lease_up_before_the_successor_campaigns() -> None:
    net = cluster()
    leader = core(net, A)
    leader.hand_over(B)
    net.tick(A)  # sends timeout_now to B
    assert leader.is_leader and not leader.holds_lease
    net.settle()
    assert core(net, B).holds_lease and not leader.is_leader


def test_a_hand_over_waits_for_queued_entries_so_the_successor_holds_the_whole_log() -> None:
    """An entry queued when the hand-over is asked for is appended in the same tick: asked to
    campaign before it, the successor would have the shorter log and lose to the old leader."""
    net = cluster()
    leader = core(net, A)
    leader.propose(b"late", lambda result, error: None)
    leader.hand_over(B)
    net.tick(A)  # appends the queued entry; the successor is asked only once it holds it
    net.deliver(keep=lambda m: m.body.get("type") == "timeout_now")  # overtakes the append
    net.tick(B)  # a successor asked now would campaign without the entry
    net.settle()
    leader.hand_over(B)  # asked again, as the group does, until the successor holds the log
    net.settle()
    assert core(net, B).is_leader and not leader.is_leader
    assert [p for _, p in net.replicas[B].applied][-1:] == [b"late"]


def test_every_new_term_is_counted() -> None:
    net = cluster()
    before = core(net, C).term_changes
    net.kill(A)
    net.elect(B)
    net.settle()
    assert core(net, C).term_changes == before + 1


def test_acks_of_a_follower_that_echoes_no_stamp_count_when_they_arrive() -> None:
    """A follower of the previous version (a rolling upgrade) must not cost the leader its lease."""
    net = cluster()
    net.time += 0.3  # later than any stamped ack of the setup
    net.heartbeat()
    net.tick(A)
    net.deliver()  # the appends
    for message in net.queue:
        message.body.pop("stamp", None)  # acks as an old follower sends them
    net.deliver()
    assert core(net, A).holds_lease
    assert core(net, A).lease_until == net.time + LEASE
