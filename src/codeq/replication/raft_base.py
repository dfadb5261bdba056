"""PySyncObj as shipped plus our log-entry type: `BaseCore`, its configuration and its errors.

Our entries are opaque bytes handed to an apply hook with their log index. `RaftCore`
(replication/raft.py) adds the workarounds design D4 requires; `BaseCore` stays because one
test shows, on it, the acknowledged-entry loss the fixes prevent (so an upgrade that changes
the behaviour fails loudly, either way).

Threads: PySyncObj runs on one tick thread (`run_ticks`). The apply hook and the proposal
callbacks are called on that thread; `propose` may be called from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf

from codeq.core.errors import CodeqError, InvalidInput, NotLeader, OutcomeUnknown, Unavailable
from codeq.replication.raft_transport import GuardedTransport
from codeq.replication.snapshot import Snapshots

log = logging.getLogger("codeq.raft")

# Our log entries: one type byte (PySyncObj uses 0..3) followed by the replicator's payload.
# Not pickled: the payload is msgspec msgpack, decoded by the replicator.
ENTRY = 16
_ENTRY_BYTE = bytes([ENTRY])
_LEADER = 2
MAX_JOURNAL_BYTES = 128 << 20  # compact once the journal holds this much in memory

ApplyHook = Callable[[int, bytes], Any]
Callback = Callable[[Any, CodeqError | None], None]


class ReplicaFailed(Exception):
    """The apply path failed: this replica stops rather than retry or skip the entry."""


def fail_reason_error(reason: int) -> CodeqError:
    """PySyncObj's fail reasons as our errors. Only reasons that guarantee the entry was never
    appended are `NotLeader`; anything that may still commit is `OutcomeUnknown`."""
    if reason in (FAIL_REASON.NOT_LEADER, FAIL_REASON.MISSING_LEADER, FAIL_REASON.QUEUE_FULL):
        return NotLeader()
    if reason == FAIL_REASON.DISCARDED:
        return NotLeader()  # another entry took its log index: it will never apply
    if reason == FAIL_REASON.REQUEST_DENIED:
        return Unavailable("raft refused the entry")
    return OutcomeUnknown("the write may or may not have been applied; retry it idempotently")


def make_conf(
    *, secret: str, timing: dict[str, float] | None = None, snapshots: Snapshots | None = None
) -> SyncObjConf:
    """The settings every group runs with; refuses to build one without a cluster secret."""
    if not secret:
        # Without a password PySyncObj unpickles whatever reaches its port: remote code execution.
        raise InvalidInput("raft.secret (RAFT_SECRET) is required when raft is enabled", field="raft.secret")
    values: dict[str, Any] = {
        "password": secret,
        "autoTick": False,  # we tick, so that flushes and failures are ours to handle
        "appendEntriesUseBatch": False,  # send each entry at once: one entry in flight
        "leaderFallbackTimeout": 2.0,  # a cut-off leader steps down in ~2 s, not 30 s
        "raftMinTimeout": 0.4,
        "raftMaxTimeout": 1.0,
        "appendEntriesPeriod": 0.05,
        "connectionTimeout": 3.5,
        "connectionRetryTime": 0.5,
        "commandsWaitLeader": False,
        # The state lives in RocksDB; PySyncObj's own pickled snapshots must never run (they
        # would pickle this object): without our snapshots the journal is never compacted.
        "logCompactionMinEntries": 2**62,
        "logCompactionMinTime": 10**12,
        # Membership changes are our own entries (replication/membership.py says why).
        "dynamicMembershipChange": False,
        # Never split an entry into PySyncObj's "transmission" messages (their follower path
        # keeps the truncation bug); the replicator keeps entries far below this.
        "appendEntriesBatchSizeBytes": 2**24,
        "maxBindRetries": 3,
    }
    if snapshots is not None:
        values |= {
            "fullDumpFile": snapshots.dump_path,
            "serializer": snapshots.serialize,
            "serializeChecker": snapshots.check,
            "deserializer": snapshots.deserialize,
            "logCompactionMinEntries": 50_000,
            "logCompactionMinTime": 600,
        }
    values.update(timing or {})
    conf = SyncObjConf(**values)
    conf.validate()
    return conf


class BaseCore(SyncObj):  # type: ignore[misc]
    """PySyncObj plus our entry type. Every journal access below goes through its private names:
    the pinned version is checked at import (`_check_version`)."""

    def __init__(
        self,
        self_addr: str,
        peers: Iterable[str],
        conf: SyncObjConf,
        apply_hook: ApplyHook,
        journal: Any,
        transport_class: Any = GuardedTransport,  # bounded before the secret is proven
    ) -> None:
        super().__init__(
            self_addr, [p for p in peers if p != self_addr], conf, transportClass=transport_class
        )
        self._apply_hook = apply_hook
        self._install_journal(journal)
        self.failure: BaseException | None = None
        self._hand_over_to: str | None = None  # set from any thread, acted on by the tick thread

    def hand_over(self, address: str) -> None:
        """Ask this leader to pass leadership to `address` ("": the most up-to-date connected
        peer) once it holds the whole log. Thread-safe; best effort."""
        self._hand_over_to = address

    def _do_hand_over(self) -> bool:
        """Returns whether the target was asked to campaign."""
        address, self._hand_over_to = self._hand_over_to, None
        if self._SyncObj__commandsQueue._FastQueue__queue:
            # Queued entries are appended later in this tick, after the successor was asked to
            # campaign: its log would be the shorter one and it would lose. Ask next tick.
            self._hand_over_to = address
            return False
        target = next((n for n in self._SyncObj__otherNodes if n.id == address), None)
        if address == "":
            target = self._most_caught_up()
        if target is None or not self.is_leader or not self.isNodeConnected(target):
            return False
        sent: list[int] = []
        # Refused by PySyncObj unless the target holds the whole log.
        self.transferLeadership(target, lambda _, reason: sent.append(reason))
        return sent == [FAIL_REASON.SUCCESS]

    def _most_caught_up(self) -> Any:
        matched = self._SyncObj__raftMatchIndex
        connected = [n for n in self._SyncObj__otherNodes if self.isNodeConnected(n)]
        return max(connected, key=lambda n: (matched.get(n, 0), n.id), default=None)

    def _install_journal(self, journal: Any) -> None:
        """Swap in our journal and reload term, vote and commit index from it, as __init__ does."""
        if len(journal) == 0:
            journal.add(bytes([1]), 1, 0)  # PySyncObj's initial no-op
        self._SyncObj__raftLog = journal
        self._SyncObj__raftCurrentTerm = max(journal.getCurrentTerm(), journal[-1][2])
        self._SyncObj__votedForNodeId = journal.getVotedForNodeId()
        self._SyncObj__raftCommitIndex = journal.getRaftCommitIndex()

    @property
    def journal(self) -> Any:
        return self._SyncObj__raftLog

    def propose(self, payload: bytes, callback: Callback) -> None:
        """Queue one entry; `callback(result, error)` runs on the tick thread once it is decided."""

        def done(result: Any, reason: int) -> None:
            error = None if reason == FAIL_REASON.SUCCESS else fail_reason_error(reason)
            try:
                callback(result, error)
            except Exception:  # an exception here would make PySyncObj apply the entry again
                log.exception("raft proposal callback failed")

        self._applyCommand(_ENTRY_BYTE + payload, done)

    def _SyncObj__doApplyCommand(self, command: bytes) -> Any:
        if command[:1] != _ENTRY_BYTE:
            return SyncObj._SyncObj__doApplyCommand(self, command)
        # PySyncObj increments lastApplied after this returns: this entry's index is one more.
        index = self._SyncObj__raftLastApplied + 1
        try:
            return self._apply_hook(index, bytes(command[1:]))
        except BaseException as exc:
            # Retrying or skipping the entry would diverge from the other replicas.
            self.failure = exc
            raise ReplicaFailed(f"applying raft entry {index} failed: {exc!r}") from exc

    @property
    def is_leader(self) -> bool:
        return bool(self._SyncObj__raftState == _LEADER)

    @property
    def holds_lease(self) -> bool:
        return self.is_leader  # no lease without RaftCore: what PySyncObj believes

    @property
    def leader_address(self) -> str | None:
        leader = self._SyncObj__raftLeader
        return None if leader is None else str(leader.id)

    @property
    def applied_index(self) -> int:
        return int(self._SyncObj__raftLastApplied)

    @property
    def term(self) -> int:
        return int(self._SyncObj__raftCurrentTerm)

    def peer_match_indexes(self) -> dict[str, int]:
        """Leader only: each peer's raft address -> the highest entry it is known to hold
        (empty on a follower, whose copy is left over from a past term). Read from the loop
        while the tick thread writes: `dict()` copies in one C call, and a change during the
        copy raises RuntimeError rather than tearing it: retried once, then reported unknown."""
        if not self.is_leader:
            return {}
        for _ in range(2):
            try:
                matched = dict(self._SyncObj__raftMatchIndex)
            except RuntimeError:
                continue
            return {str(node.id): int(index) for node, index in matched.items()}
        return {}

    def tick(self, wait_seconds: float = 0.0) -> None:
        """One PySyncObj tick, then make durable what this node appended as leader."""
        if self._hand_over_to is not None:
            self._do_hand_over()
        before = self.journal[-1][1]
        self._onTick(wait_seconds)
        if self.journal[-1][1] != before and self.is_leader:
            self._flush_journal()

    def _flush_journal(self) -> None:
        self.journal.flush()

    def run_ticks(self, stopping: threading.Event, wait_seconds: float = 0.005) -> None:
        """The tick thread's body: tick until stopped; any failure stops this replica."""
        try:
            while not stopping.is_set():
                self.tick(wait_seconds)
        except BaseException as exc:
            self.failure = self.failure or exc
            log.critical("raft replica stopped: %r", exc)
        finally:
            self._doDestroy()
