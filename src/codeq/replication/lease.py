"""The leader lease: when a Raft leader may act as the only leader, on PySyncObj's state.

Believing it leads is not enough: a leader cut off from its peers keeps that belief until it
hears of a newer term. A leader holds the lease only while a majority has acknowledged an
append it sent less than `lease_s` ago (counted from the send, so any delay on the way only
shortens it). A follower neither campaigns nor grants a pre-vote until it has heard nothing
from a leader for `quiet_s` (the shortest election timeout), and a restarted node counts its
start as contact, so no majority can elect another leader while this lease runs, as long as
`lease_s` is shorter than `quiet_s` by more than the clocks can drift apart over it (the
config check keeps a margin). A leader that loses the lease steps down; one that hands over
gives it up before it asks the successor to campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("codeq.raft")


class LeaderLease:
    """Mixed into RaftCore (before PySyncObj's SyncObj, whose private state it reads)."""

    _SyncObj__otherNodes: Any
    _SyncObj__raftLastApplied: int
    _SyncObj__noopIDx: int
    _SyncObj__raftCurrentTerm: int
    _SyncObj__raftLeader: Any
    _SyncObj__setState: Any
    _SyncObj__onLeaderChanged: Any
    _send_unstamped: Any
    selfNode: Any
    conf: Any
    is_leader: bool
    now: Callable[[], float]
    lease_s: float
    quiet_s: float
    _leader_contact: float

    def _init_lease(self) -> None:
        self._acked: dict[str, float] = {}  # follower id -> send time of its latest acked append
        self._leading_since = 0.0
        self._lease_floor = 0.0  # acks of appends sent before this do not count (hand-over)
        self._stamp = 0.0  # send time of the appends going out in this tick
        self.lease_until = 0.0  # written by the tick thread, read by any
        self.term_changes = 0  # terms this node has seen begin since it started
        self._last_term = self._SyncObj__raftCurrentTerm

    @property
    def holds_lease(self) -> bool:
        """Whether this node may act as the one leader now: reads labelled `leader`, the
        status, and every leader-only action ask this, not `is_leader`."""
        return self.is_leader and self.now() < self.lease_until

    @property
    def leader_address(self) -> str | None:
        """The leader as this node knows it. A follower names the leader only while it has
        heard from it within `quiet_s`: by then any lease that leader held on this node's
        acks is over, and it may be dead. PySyncObj keeps naming it for as long as this node
        reaches no peer, so a survivor of a dead majority named a dead leader."""
        contact = getattr(self, "_leader_contact", None)  # None while PySyncObj's init runs
        if contact is not None and not self.is_leader and self.now() - contact >= self.quiet_s:
            return None
        return super().leader_address  # type: ignore[misc, no-any-return]  # BaseCore's, further down the MRO

    # -- stamping appends, echoed back in acks (RaftCore._ack) ------------------------------

    def _SyncObj__sendAppendEntries(self) -> None:
        self._stamp = self.now()
        super()._SyncObj__sendAppendEntries()  # type: ignore[misc]  # PySyncObj's, further down the MRO

    def _send_stamped(self, node: Any, message: Any) -> Any:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "append_entries":
            message["stamp"] = self._stamp  # the follower echoes it in its ack
        elif kind == "timeout_now":
            # A hand-over: the successor campaigns as soon as it reads this, without waiting
            # out the lease, so give the lease up before it leaves.
            self._give_up_lease(for_s=float(self.conf.raftMaxTimeout))
        return self._send_unstamped(node, message)

    def _step_down(self) -> None:
        log.info("raft leader %s stepping down: no majority heard within the lease", self.selfNode.id)
        self._SyncObj__setState(0)
        self._SyncObj__raftLeader = None
        self._SyncObj__onLeaderChanged()  # what was waiting may or may not commit: fail it now
        self.lease_until = 0.0

    def _on_become_leader(self) -> None:
        self._leading_since = self.now()
        self._lease_floor = self._leading_since
        self._acked.clear()
        self.lease_until = 0.0

    def _on_lease_ack(self, node_id: str, stamp: object) -> None:
        if isinstance(stamp, float) and stamp >= self._lease_floor and stamp > self._acked.get(node_id, 0.0):
            self._acked[node_id] = stamp
            self._refresh_lease()

    def _majority_stamp(self, missing: float) -> float:
        """The latest send time a majority (this node included) has acknowledged."""
        others = self._SyncObj__otherNodes
        needed = (len(others) + 1) // 2  # acks from others that make a majority with this node
        if needed == 0:
            return self.now()
        stamps = sorted((self._acked.get(node.id, missing) for node in others), reverse=True)
        return stamps[needed - 1]

    def _refresh_lease(self) -> None:
        """Recompute the lease (tick thread). Reads are served as the leader's only once the
        entry that opened this term is applied: before that the store may lack committed
        entries of the previous term."""
        if not self.is_leader or self._SyncObj__raftLastApplied < self._SyncObj__noopIDx:
            self.lease_until = 0.0
            return
        self.lease_until = self._majority_stamp(missing=float("-inf")) + self.lease_s

    def _lease_lost(self) -> bool:
        """Whether a leader has gone `lease_s` without a majority's ack (a new leader gets
        `lease_s` from its election to collect them)."""
        return self.now() - self._majority_stamp(missing=self._leading_since) > self.lease_s

    def _give_up_lease(self, for_s: float) -> None:
        """Handing over: stop acting as leader now, and count only acks of appends sent after
        `for_s` (by then the successor has won, or failed and this node still leads)."""
        self._lease_floor = self.now() + for_s
        self._leading_since = self._lease_floor  # no step-down for want of acks meanwhile
        self._acked.clear()
        self.lease_until = 0.0

    def _count_term(self) -> None:
        term = self._SyncObj__raftCurrentTerm
        if term != self._last_term:
            self._last_term = term
            self.term_changes += 1
