"""Who votes in one Raft group: membership changes as log entries, one at a time (issue 18).

PySyncObj's own dynamic membership is left off (`make_conf`), because as shipped it is unsafe
with our RaftCore: its guard against a second change while one is uncommitted
(`__changeClusterIDx`) is never set, so two changes can be in flight and two majorities
exist; followers apply changes in its append path, which RaftCore replaces; after a restart
it uses the configuration of the *applied* entries only (uncommitted changes in the journal
are ignored until they commit), and its dump keeps raft addresses but not what redirects
need. Here instead a change is our own entry type (`MEMBER_ENTRY`, msgpack), and:

- a node's configuration is always the last one in its journal, committed or not (Raft
  thesis §4.1): the committed roster on disk plus the change entries after it; RaftCore
  recomputes it after every tick, so appends, truncations and snapshot installs all count;
- the leader refuses a change until the previous one is committed and until an entry of its
  own term is (the thesis's fix for single-server changes across leader changes);
- each member carries its HTTP base URL and gRPC stream addresses, so redirects follow the
  membership, and the roster is fsynced when a change commits and travels in snapshots;
- a node that is not in its own configuration (joining, or removed) never campaigns.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from codeq.core.errors import CodeqError, Conflict, InvalidInput, NotLeader, Unavailable
from codeq.replication.journal import fsync_dir
from codeq.replication.topology import Topology, shift_port

MEMBER_ENTRY = 17
MEMBER_BYTE = bytes([MEMBER_ENTRY])


# Unknown fields are ignored, not refused: a newer node's entries must not stop an older
# replica during a rolling upgrade.
class Member(msgspec.Struct, frozen=True):
    id: str
    raft: str  # shard 0's raft host:port; shard i's group listens on its port + i
    http: str = ""
    streams: dict[str, str] = {}  # kind ("producer", "worker") -> grpc://host:port


class Change(msgspec.Struct, frozen=True):
    op: str  # "add" | "remove"
    member: Member


class Roster(msgspec.Struct, frozen=True):
    """The voters as of log entry `index` (0: the static configuration)."""

    index: int
    members: list[Member]


_encode = msgspec.msgpack.Encoder().encode
_decode_change = msgspec.msgpack.Decoder(Change).decode
_decode_roster = msgspec.msgpack.Decoder(Roster).decode


def encode_change(change: Change) -> bytes:
    return MEMBER_BYTE + _encode(change)


def decode_change(entry: bytes) -> Change:
    return _decode_change(entry[1:])


def fold(members: Mapping[str, Member], change: Change) -> dict[str, Member]:
    result = dict(members)
    if change.op == "add":
        result[change.member.id] = change.member
    else:
        result.pop(change.member.id, None)
    return result


class MemberStore:
    """The committed roster of one group on disk, replaced atomically."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Roster | None:
        try:
            with open(self.path, "rb") as saved:
                return _decode_roster(saved.read())
        except FileNotFoundError:
            return None

    def save(self, roster: Roster) -> None:
        staging = self.path + ".new"
        with open(staging, "wb") as out:
            out.write(_encode(roster))
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, self.path)
        fsync_dir(self.path)


class GroupMembers:
    """One group's configuration: the committed roster plus the change entries after it.
    Mutated on the tick thread; readers on the loop get whole dicts (swapped, never edited)."""

    def __init__(
        self, shard: int, self_id: str, store: MemberStore | None, starting: Mapping[str, Member]
    ) -> None:
        self.shard = shard
        self.self_id = self_id
        self.store = store
        saved = store.load() if store is not None else None
        self.roster = saved or Roster(0, sorted(starting.values(), key=lambda m: m.id))
        self.pending: list[tuple[int, int, Change]] = []  # (index, term, change) after the roster
        self.current: dict[str, Member] = {m.id: m for m in self.roster.members}
        self.generation = 0  # bumped when a snapshot replaces the roster
        self.listeners: list[Callable[[dict[str, Member]], None]] = []

    def address(self, member: Member) -> str:
        return shift_port(member.raft, self.shard)

    @property
    def is_voter(self) -> bool:
        return self.self_id in self.current

    def peer_addresses(self) -> set[str]:
        return {self.address(m) for m in self.current.values() if m.id != self.self_id}

    def recompute(self) -> None:
        members = {m.id: m for m in self.roster.members}
        for _, _, change in self.pending:
            members = fold(members, change)
        if members != self.current:
            self.current = members
            for listener in self.listeners:
                listener(members)

    def commit(self, index: int, change: Change) -> None:
        """A change entry committed and is applied, in log order: it joins the roster on disk."""
        if index <= self.roster.index:
            return  # re-applied after a restart: already in the roster
        members = fold({m.id: m for m in self.roster.members}, change)
        self.roster = Roster(index, sorted(members.values(), key=lambda m: m.id))
        self.pending = [p for p in self.pending if p[0] > index]
        if self.store is not None:
            self.store.save(self.roster)

    # -- snapshots (replication/snapshot.py) -----------------------------------------------

    def committed(self) -> dict[str, Any]:
        """The roster as of the last applied entry, for a snapshot's header."""
        return msgspec.to_builtins(self.roster)  # type: ignore[no-any-return]

    def install(self, raw: dict[str, Any]) -> None:
        """A snapshot replaced the store and the journal: its roster replaces ours."""
        roster = msgspec.convert(raw, Roster)
        if roster.index <= self.roster.index:
            return
        self.roster = roster
        self.pending = []
        self.generation += 1
        if self.store is not None:
            self.store.save(roster)


def starting_members(topology: Topology, *, join: bool) -> dict[str, Member]:
    """The static configuration: every peer, or (joining) every peer but this node, which
    becomes a voter only once the leader's log adds it."""
    members = {}
    for node, raft in topology.peers.items():
        if join and node == topology.self_id:
            continue
        streams = {kind: urls[node] for kind, urls in topology.peer_streams.items() if urls.get(node)}
        members[node] = Member(node, raft, topology.peer_http.get(node, ""), streams)
    return members


def group_members(topology: Topology, shard: int, directory: str, *, join: bool) -> GroupMembers:
    """Shard `shard`'s configuration, restored from `directory`; the topology follows it."""
    store = MemberStore(os.path.join(directory, "members"))
    members = GroupMembers(shard, topology.self_id, store, starting_members(topology, join=join))
    members.listeners.append(lambda current: topology.learn(shard, current))
    topology.learn(shard, members.current)
    return members


class MembershipSync:
    """Mixed into RaftCore: keeps PySyncObj's voters equal to the journal's last configuration."""

    _SyncObj__raftCommitIndex: int
    _SyncObj__raftLastApplied: int
    _SyncObj__noopIDx: int
    _SyncObj__otherNodes: Any
    _SyncObj__raftElectionDeadline: float
    _SyncObj__generateRaftTimeout: Any
    _SyncObj__doChangeCluster: Any
    _applyCommand: Any
    journal: Any
    is_leader: bool
    isNodeConnected: Any
    members: GroupMembers | None
    _member_callback: Any  # RaftCore: our callback as PySyncObj's (result, fail reason) one

    def _init_members(self, members: GroupMembers | None) -> None:
        self.members = members
        self._members_seen = (0, 0, -1)  # (index, term, generation) of the last entry scanned
        self._change_queued = False  # a change proposed here that the log has not taken yet
        self._sync_members()

    def _sync_members(self) -> None:
        group = self.members
        if group is None:
            return
        journal = self.journal
        last_index, last_term = journal[-1][1], journal[-1][2]
        seen_index, seen_term, seen_generation = self._members_seen
        if (last_index, last_term, group.generation) == (seen_index, seen_term, seen_generation):
            return
        first = journal[0][1]
        rescan = seen_generation != group.generation or not first <= seen_index <= last_index
        if rescan or journal[seen_index - first][2] != seen_term:
            group.pending = []  # truncated or replaced: scan the whole journal again
            start, changed = first, True
        else:
            start, changed = seen_index + 1, False
        for position in range(start - first, len(journal)):
            command, index, term = journal[position][:3]
            if command[:1] == MEMBER_BYTE and index > group.roster.index:
                group.pending.append((index, term, decode_change(command)))
                self._change_queued = False
                changed = True
        self._members_seen = (last_index, last_term, group.generation)
        if changed:  # most ticks append ordinary entries only: nothing to recompute
            group.recompute()
            self._apply_voters(group)

    def _apply_voters(self, group: GroupMembers) -> None:
        want = group.peer_addresses()
        have = {str(node.id) for node in tuple(self._SyncObj__otherNodes)}
        for address in sorted(want - have):
            self._SyncObj__doChangeCluster(["add", address])
        for address in sorted(have - want):
            self._SyncObj__doChangeCluster(["rem", address])

    def _may_campaign(self) -> bool:
        """A node outside its own configuration (joining, or removed) stays a silent follower."""
        if self.members is None or self.members.is_voter:
            return True
        self._SyncObj__raftElectionDeadline = time.monotonic() + self._SyncObj__generateRaftTimeout()
        return False

    def membership_problem(self) -> str | None:
        """Why this node takes no part in its group, if so: not (or no longer) a voter."""
        group = self.members
        if group is None or group.is_voter:
            return None
        return (
            f"this node is not a voter of shard {group.shard}: joining (waiting for "
            "`codeq cluster add-node`), or removed from the cluster"
        )

    def _commit_member(self, index: int, entry: bytes) -> None:
        group = self.members
        if group is not None:
            group.commit(index, decode_change(entry))
            # An entry appended and committed within one tick was never pending: count it now.
            group.recompute()
            self._apply_voters(group)

    # -- the leader's side: proposing one change -------------------------------------------

    def change_in_flight(self) -> bool:
        group = self.members
        return self._change_queued or (group is not None and bool(group.pending))

    def connected_voters(self) -> set[str]:
        """Ids of the voters this leader reaches now, itself included."""
        group = self.members
        if group is None:
            return set()
        # tuple() copies the set in one C call, while the tick thread may change it.
        reached = {str(node.id) for node in tuple(self._SyncObj__otherNodes) if self.isNodeConnected(node)}
        return {m.id for m in group.current.values() if m.id == group.self_id or group.address(m) in reached}

    def propose_change(self, change: Change, callback: Callable[[CodeqError | None], None]) -> None:
        """Queue `change` as a log entry; refused unless this node leads, the previous change
        and an entry of this term are committed."""
        if not self.is_leader:
            raise NotLeader()
        if self.change_in_flight():
            raise Conflict("another membership change is in flight: wait until it commits")
        noop: int | None = self._SyncObj__noopIDx  # None until this node first led
        if noop is None or self._SyncObj__raftLastApplied < noop:
            raise Unavailable("this leader was just elected: retry in a moment")
        self._change_queued = True
        self._applyCommand(encode_change(change), self._member_callback(callback))


async def change_members(core: Any, change: Change, timeout_s: float) -> None:
    """Propose `change` on `core` (a RaftCore) and wait until it commits."""
    loop = asyncio.get_running_loop()
    decided: asyncio.Future[CodeqError | None] = loop.create_future()

    def callback(error: CodeqError | None) -> None:  # on the tick thread
        loop.call_soon_threadsafe(_settle, decided, error)

    core.propose_change(change, callback)
    try:
        error = await asyncio.wait_for(decided, timeout_s)
    except TimeoutError:
        raise Unavailable("the membership change did not commit in time; check /raft/status") from None
    finally:
        core._change_queued = False  # appended by now (the journal's change counts), or never
    if error is not None:
        raise error


def _settle(decided: asyncio.Future[CodeqError | None], error: CodeqError | None) -> None:
    if not decided.done():
        decided.set_result(error)


def check_member(member: Member) -> None:
    """Bad input is a 400 naming the field."""
    if not member.id.strip() or any(c in member.id for c in ",= \t\n"):
        raise InvalidInput("id must be a non-empty node id without ',', '=' or spaces", field="id")
    host, _, port = member.raft.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"raft must look like host:port, got {member.raft!r}", field="raft")
    if not member.http.startswith(("http://", "https://")):
        raise InvalidInput("http must be the node's HTTP base URL (http://host:port)", field="http")
