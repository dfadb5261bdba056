"""PySyncObj with the fixes design D4 requires: `RaftCore`, on `BaseCore` (raft_base.py).

Each fix is pinned by a test in tests/replication/test_raft_core.py. Threads: as `BaseCore`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj

from codeq.core.errors import CodeqError
from codeq.replication.lease import LeaderLease
from codeq.replication.membership import MEMBER_BYTE, GroupMembers, MembershipSync
from codeq.replication.peers import PeerShape, PreVote
from codeq.replication.raft_base import MAX_JOURNAL_BYTES, BaseCore, ReplicaFailed, fail_reason_error

log = logging.getLogger("codeq.raft")


class RaftCore(MembershipSync, LeaderLease, PreVote, PeerShape, BaseCore):
    """`BaseCore` with the design D4 fixes (pre-vote and peer shape: replication/peers.py),
    the leader lease (replication/lease.py) and membership changes (replication/membership.py;
    without `members` the voters are the static peers)."""

    def __init__(
        self, *args: Any, shape: str = "", members: GroupMembers | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._init_members(members)
        self.now: Callable[[], float] = time.monotonic  # the lease's clock (tests replace it)
        self.lease_s = float(self.conf.leaderFallbackTimeout)
        self.quiet_s = float(self.conf.raftMinTimeout)
        # Compact once the journal holds this many entry bytes in memory, whatever the entry
        # count and time (only with our snapshots: PySyncObj's own would pickle this object).
        self.max_journal_bytes = MAX_JOURNAL_BYTES if self.conf.serializer is not None else None
        self._init_lease()
        transport = self._SyncObj__transport
        self._send_unstamped = transport.send
        transport.send = self._send_stamped
        # What every node of the cluster must agree on (e.g. "shards=4"), checked with each
        # peer on connect (spec 06 gap 7): a peer that disagrees is logged and ignored.
        self.shape = shape
        self.origin = ""  # set by the group from the store (replication/snapshot.py ORIGIN_KEY)
        self.shape_conflicts: dict[str, str] = {}  # peer -> what it disagrees on
        # When we last heard from a leader; starting counts, so that a restarted node does not
        # help elect another leader while one may still hold a lease on its ack (lease.py).
        self._leader_contact = self.now()
        self._prevotes: set[str] = set()
        self._prevote_term = 0
        self._campaign_approved = False

    # -- follower: append entries ----------------------------------------------------------

    def _SyncObj__onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if node.id in self.shape_conflicts and kind != "codeq_shape":
            return  # a peer configured differently takes no part in this group
        if kind == "append_entries" and "prevLogIdx" in message and "transmission" not in message:
            self._on_append(node, message)
        elif kind == "next_node_idx" and self.is_leader:
            self._on_next_index(node, message)
        elif kind == "pre_vote":
            self._on_pre_vote(node, message)
        elif kind == "pre_vote_granted":
            self._on_pre_vote_granted(node, message)
        elif kind == "codeq_shape":
            self._check_shape(node, message)
        elif kind == "timeout_now":
            # The leader hands over: campaign at once, without asking (pre-vote would be refused
            # while that leader is alive).
            if node == self._SyncObj__raftLeader and message["term"] >= self._SyncObj__raftCurrentTerm:
                self._campaign_approved = True
            SyncObj._SyncObj__onMessageReceived(self, node, message)
        else:
            if kind == "append_entries" and message.get("term", -1) >= self._SyncObj__raftCurrentTerm:
                self._leader_contact = self.now()
            SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _SyncObj__onNodeConnected(self, node: Any) -> None:
        SyncObj._SyncObj__onNodeConnected(self, node)
        self._send_shape(node)

    def _send_shape(self, node: Any) -> None:
        shape = {"type": "codeq_shape", "shape": self.shape, "origin": self.origin}
        self._SyncObj__transport.send(node, shape)

    def set_origin(self, origin: str) -> None:
        """Record the backup this node's data came from (before the tick thread starts) and
        tell the peers already connected, who saw none."""
        self.origin = origin
        for node in self._SyncObj__otherNodes:
            if self.isNodeConnected(node):
                self._send_shape(node)

    def _follow(self, node: Any, term: int) -> None:
        """What PySyncObj does on any append from a current leader: reset the election timer,
        adopt its term and leadership."""
        if term > self._SyncObj__raftCurrentTerm:
            self._SyncObj__transferInProgress = False  # a newer leader supersedes a hand-over
        if not self._SyncObj__transferInProgress:
            # While a hand-over is pending, the outgoing leader's appends must not put off
            # the election it asked for.
            self._SyncObj__raftElectionDeadline = time.monotonic() + self._SyncObj__generateRaftTimeout()
        leader: Any = getattr(self, "_SyncObj__raftLeader")  # noqa: B009 - assigned below: mypy needs getattr
        if leader != node:
            self._SyncObj__onLeaderChanged()
        self._SyncObj__raftLeader = node
        if term > self._SyncObj__raftCurrentTerm:
            self._SyncObj__setCurrentTerm(term, None)
        self._SyncObj__setState(0)
        self._leader_contact = self.now()

    def _on_append(self, node: Any, message: dict[str, Any]) -> None:
        if message["term"] < self._SyncObj__raftCurrentTerm:
            return  # a stale leader: PySyncObj ignores it too
        self._follow(node, message["term"])
        prev_index, prev_term = message["prevLogIdx"], message["prevLogTerm"]
        prev = self._SyncObj__getEntries(prev_index, 1)
        stamp = message.get("stamp")
        if not prev:
            self._ack(node, self._SyncObj__getCurrentLogIndex() + 1, stamp, success=False)
            return
        if prev[0][2] != prev_term:
            self._ack(node, prev_index, stamp, success=False)
            return
        entries = message.get("entries", [])
        changed = self._append_new(entries)
        last_new = prev_index + len(entries)
        # Commit no further than the last entry this leader has shown to match (Raft §5.3);
        # what lies beyond it may be another term's leftovers, kept until a conflict.
        commit = min(message["commit_index"], last_new)
        if commit > self._SyncObj__raftCommitIndex:
            self._SyncObj__raftCommitIndex = commit
            self.journal.setRaftCommitIndex(commit)
        self._SyncObj__leaderCommitIndex = message["commit_index"]
        if changed:
            # The ack counts toward commit on the leader: the entries must be on disk first.
            self._flush_journal()
        self._ack(node, last_new + 1, stamp, success=True)

    def _ack(self, node: Any, next_index: int, stamp: object, *, success: bool) -> None:
        """PySyncObj's next_node_idx reply, echoing the append's send time for the lease."""
        reply = {"type": "next_node_idx", "next_node_idx": next_index, "reset": not success}
        self._SyncObj__transport.send(node, reply | {"success": success, "stamp": stamp})

    def _append_new(self, entries: list[Any]) -> bool:
        """Skip entries already held; truncate only at the first term conflict (Raft §5.3).
        Returns whether the journal changed."""
        for position, entry in enumerate(entries):
            index, term = entry[1], entry[2]
            held = self._SyncObj__getEntries(index, 1)
            if held and held[0][2] == term:
                continue
            if held:
                if index <= self._SyncObj__raftCommitIndex:
                    raise ReplicaFailed(f"leader conflicts with committed entry {index}")
                self._SyncObj__deleteEntriesFrom(index)
            for new in entries[position:]:
                self.journal.add(*new)
            return True
        return False

    # -- leader: follower progress ---------------------------------------------------------

    def _on_next_index(self, node: Any, message: dict[str, Any]) -> None:
        match_index = self._SyncObj__raftMatchIndex
        next_index = self._SyncObj__raftNextIndex
        hint = message["next_node_idx"]
        if message["success"]:
            if match_index.get(node, 0) < hint - 1:
                match_index[node] = hint - 1
            next_index[node] = max(next_index.get(node, hint), hint)
        elif message["reset"]:
            # A rejection walks back, but never below what the follower is known to hold:
            # stale rejections arriving after acks must not undo progress.
            next_index[node] = max(hint, match_index.get(node, 0) + 1)
        if next_index[node] <= self._SyncObj__getCurrentLogIndex():
            self._SyncObj__newAppendEntriesTime = 0  # behind: send the rest on the next tick
        self._SyncObj__lastResponseTime[node] = time.monotonic()
        # A follower of an earlier version echoes no stamp: count its ack when it arrived
        # (PySyncObj's own rule), or a rolling upgrade would leave the leader without a lease.
        self._on_lease_ack(node.id, message["stamp"] if "stamp" in message else self.now())

    # -- membership ------------------------------------------------------------------------

    def reach_problem(self) -> str | None:
        return self.membership_problem() or super().reach_problem()

    def _SyncObj__doApplyCommand(self, command: bytes) -> Any:
        if command[:1] != MEMBER_BYTE:
            return BaseCore._SyncObj__doApplyCommand(self, command)
        self._commit_member(self._SyncObj__raftLastApplied + 1, bytes(command))
        return None

    @staticmethod
    def _member_callback(callback: Callable[[CodeqError | None], None]) -> Callable[[Any, int], None]:
        def done(_: Any, reason: int) -> None:
            try:
                callback(None if reason == FAIL_REASON.SUCCESS else fail_reason_error(reason))
            except Exception:  # an exception here would make PySyncObj apply the entry again
                log.exception("raft membership callback failed")

        return done

    # -- elections: pre-vote ---------------------------------------------------------------

    def tick(self, wait_seconds: float = 0.0) -> None:
        if self.is_leader and self._lease_lost():
            self._step_down()
        # A node outside its own configuration never campaigns: it only follows.
        due = not self.is_leader and self._SyncObj__raftElectionDeadline < time.monotonic()
        if due and self._may_campaign():
            if self._campaign_approved:
                self._campaign_approved = False  # PySyncObj campaigns in this tick
            else:
                self._start_pre_vote()
        super().tick(wait_seconds)
        self._sync_members()
        self._refresh_lease()
        self._count_term()
        limit = self.max_journal_bytes
        if limit is not None and getattr(self.journal, "held_bytes", 0) > limit:
            self.forceLogCompaction()  # a flag: PySyncObj starts one when none is running

    def _SyncObj__onBecomeLeader(self) -> None:
        self._on_become_leader()
        SyncObj._SyncObj__onBecomeLeader(self)
        self._prevote_term = 0
