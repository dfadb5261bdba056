"""What RaftCore checks with its peers, on PySyncObj's state without importing it.

Pre-vote (Raft thesis §9.6): a node asks its peers before campaigning; they agree only if
they hear from no live leader and its log is at least as up to date as theirs, so a node
that cannot win — a restarted ex-leader behind the others — no longer raises the term and
deposes a working leader. Peer shape (spec 06 gap 7): peers exchange what every node must
agree on (the shard count, and the backup a new cluster's nodes were initialised from) when
they connect, and ignore a peer that disagrees.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("codeq.raft")


class PreVote:
    """Mixed into RaftCore (before PySyncObj's SyncObj, whose private state it reads)."""

    # PySyncObj's state and methods this mixin uses (the attributes live on SyncObj).
    _SyncObj__otherNodes: Any
    _SyncObj__raftElectionDeadline: float
    _SyncObj__raftCurrentTerm: int
    _SyncObj__raftLeader: Any
    _SyncObj__transport: Any
    _SyncObj__generateRaftTimeout: Any
    _SyncObj__getCurrentLogIndex: Any
    _SyncObj__getCurrentLogTerm: Any
    selfNode: Any
    conf: Any
    isNodeConnected: Any
    is_leader: bool
    _leader_contact: float
    now: Any
    quiet_s: float
    _prevotes: set[str]
    _prevote_term: int
    _campaign_approved: bool

    def _start_pre_vote(self) -> None:
        """Ask before campaigning (Raft thesis §9.6): a node that cannot win — a restarted
        ex-leader behind the others — no longer raises the term and deposes a working leader."""
        others = self._SyncObj__otherNodes
        # Ask again soon rather than after a whole election timeout: a peer refuses while it
        # heard from the leader less than `quiet_s` ago, which after a leader's death is
        # often only a few milliseconds less than this node.
        retry = min(self._SyncObj__generateRaftTimeout(), self.quiet_s / 4)
        self._SyncObj__raftElectionDeadline = time.monotonic() + retry
        self._prevote_term = self._SyncObj__raftCurrentTerm + 1
        self._prevotes = {self.selfNode.id}
        if self._has_prevote_majority():
            self._approve_campaign()
            return
        request = {
            "type": "pre_vote",
            "term": self._prevote_term,
            "last_log_index": self._SyncObj__getCurrentLogIndex(),
            "last_log_term": self._SyncObj__getCurrentLogTerm(),
        }
        for other in others:
            self._SyncObj__transport.send(other, request)

    def _has_prevote_majority(self) -> bool:
        return len(self._prevotes) > (len(self._SyncObj__otherNodes) + 1) / 2

    def _leader_alive(self) -> bool:
        """Whether a leader may still count on this node's last ack for its lease. A dropped
        connection proves nothing (the leader may be alive behind a partition): only time
        since its last append does."""
        if self.is_leader:
            return True
        return bool(self.now() - self._leader_contact < self.quiet_s)

    def _on_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        last_term = self._SyncObj__getCurrentLogTerm()
        up_to_date = message["last_log_term"] > last_term or (
            message["last_log_term"] == last_term
            and message["last_log_index"] >= self._SyncObj__getCurrentLogIndex()
        )
        if message["term"] < self._SyncObj__raftCurrentTerm or not up_to_date or self._leader_alive():
            return
        self._SyncObj__transport.send(node, {"type": "pre_vote_granted", "term": message["term"]})

    def _on_pre_vote_granted(self, node: Any, message: dict[str, Any]) -> None:
        if self.is_leader or message["term"] != self._prevote_term:
            return
        self._prevotes.add(node.id)
        if self._has_prevote_majority():
            self._approve_campaign()

    def _approve_campaign(self) -> None:
        self._prevote_term = 0
        self._campaign_approved = True
        self._SyncObj__raftElectionDeadline = 0  # PySyncObj campaigns on the next tick


class PeerShape:
    """Mixed into RaftCore: the shape check; RaftCore sends its shape on every connect."""

    _SyncObj__otherNodes: Any
    isNodeConnected: Any
    shape: str
    # The backup `codeq cluster init` made this node's data from ("": none); compared like the
    # shape, so that a node initialised from another backup cannot join with other data.
    origin: str
    shape_conflicts: dict[str, str]

    def reach_problem(self) -> str | None:
        """Why this node cannot take part in a majority now, if so: too few peers connected
        (a connection drops at once when a peer's process dies)."""
        others = self._SyncObj__otherNodes
        connected = sum(1 for node in others if self.isNodeConnected(node))
        if connected + 1 > (len(others) + 1) / 2:
            return None
        return f"this node reaches {connected} of its {len(others)} raft peers: no majority"

    def _check_shape(self, node: Any, message: dict[str, Any]) -> None:
        problem = self._disagreement(message)
        if problem is None:
            self.shape_conflicts.pop(node.id, None)
        elif node.id not in self.shape_conflicts:
            self.shape_conflicts[node.id] = problem
            log.error("%s", self._conflict_text(node.id, problem))

    def _disagreement(self, message: dict[str, Any]) -> str | None:
        """What a peer's shape message says this node disagrees with, if anything. A node with
        no origin (started empty, or restored before `cluster init` recorded one) agrees with
        any: it takes the leader's data whole."""
        shape = str(message.get("shape"))
        if shape != self.shape:
            return (
                f"runs with {shape!r}, this node with {self.shape!r}: "
                "every node of a cluster needs the same numShards"
            )
        origin = str(message.get("origin") or "")
        if origin and self.origin and origin != self.origin:
            return (
                f"was initialised from backup {origin}, this node from {self.origin}: every node "
                "of a new cluster must be initialised from the same backup"
            )
        return None

    def _conflict_text(self, peer: str, problem: str) -> str:
        return f"raft peer {peer} {problem}; that peer is ignored"

    def shape_problem(self) -> str | None:
        """Why this group cannot form a majority with the peers that share its shape, if so."""
        voters = len(self._SyncObj__otherNodes) + 1
        agreeing = voters - len(self.shape_conflicts)
        if not self.shape_conflicts or agreeing > voters / 2:
            return None
        peer, problem = next(iter(self.shape_conflicts.items()))
        return self._conflict_text(peer, problem)
