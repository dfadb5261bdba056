"""Where each shard's Raft group lives: addresses per group, leader URLs, and the status view.

The static peers are the starting membership; each group reports its configuration as it
changes (`learn`, replication/membership.py), and lookups use what the groups report over it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class MemberView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def raft(self) -> str: ...

    @property
    def http(self) -> str: ...

    @property
    def streams(self) -> Mapping[str, str]: ...


class GroupView(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_address(self) -> str | None: ...

    @property
    def term_changes(self) -> int: ...

    @property
    def term(self) -> int: ...

    @property
    def applied_index(self) -> int: ...

    def peer_match_indexes(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One voter of a group as this node sees it; None where it cannot know."""

    id: str
    addr: str  # this group's raft address
    http_addr: str
    applied_index: int | None  # own: applied; a peer's: its match index, on the leader only
    ready: bool | None  # own: exact; a peer's: its last /readyz probe (None: not probed yet)


@dataclass(frozen=True, slots=True)
class GroupStatus:
    shard_idx: int
    is_leader: bool
    self_id: str
    self_addr: str
    leader_id: str
    leader_addr: str
    leader_http_addr: str
    term_changes: int = 0  # terms begun since this node started: each is an election
    term: int = 0
    nodes: tuple[NodeStatus, ...] = ()


def shift_port(address: str, offset: int) -> str:
    """`host:port` with port + offset: shard i's group listens on the base port + i (spec 06 §3)."""
    host, _, port = address.rpartition(":")
    return f"{host}:{int(port) + offset}"


Known = tuple[str, str, Mapping[str, str]]  # a node's raft base address, HTTP URL, streams


@dataclass(frozen=True, slots=True)
class Topology:
    self_id: str
    bind_addr: str
    peers: Mapping[str, str]  # id -> shard 0 raft address, self included
    peer_http: Mapping[str, str]  # id -> HTTP base URL
    # kind ("producer", "worker") -> id -> grpc://host:port of that node's stream
    peer_streams: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # shard -> that group's voters as it last reported them (id -> member); swapped whole
    voters: dict[int, Mapping[str, MemberView]] = field(default_factory=dict)
    # What `_known` answers, rebuilt when a group reports its members (rare) rather than on
    # every lookup; a one-slot box, so that the rebuilt map replaces the old in one store.
    _known_box: list[dict[str, Known]] = field(default_factory=list, init=False, repr=False, compare=False)
    _learning: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._known_box.append(self._build_known())

    def learn(self, shard: int, members: Mapping[str, MemberView]) -> None:
        """Group `shard` runs with `members` now (from its tick thread, or a shard process's
        loop: the lock keeps two groups' reports from storing a map that lacks the other's)."""
        with self._learning:
            self.voters[shard] = dict(members)
            self._known_box[0] = self._build_known()

    def _known(self) -> dict[str, Known]:
        return self._known_box[0]

    def _build_known(self) -> dict[str, Known]:
        """Every node any group names (id -> raft base, HTTP URL, streams), over the static peers."""
        known: dict[str, Known] = {
            node: (
                raft,
                self.peer_http.get(node, ""),
                {k: m[node] for k, m in self.peer_streams.items() if m.get(node)},
            )
            for node, raft in self.peers.items()
        }
        for members in list(self.voters.values()):
            for member in members.values():
                known[member.id] = (member.raft, member.http, member.streams)
        return known

    def self_addr(self, shard: int) -> str:
        return shift_port(self.peers[self.self_id], shard)

    def bind(self, shard: int) -> str:
        return shift_port(self.bind_addr, shard)

    def addrs(self, shard: int) -> list[str]:
        return [shift_port(address, shard) for address in self.peers.values()]

    def preferred_leader(self, shard: int) -> str:
        """Shard i's preferred leader: the i-th node in id order, so groups spread evenly."""
        ids = sorted(self.peers)
        return shift_port(self.peers[ids[shard % len(ids)]], shard)

    def id_of(self, address: str | None, shard: int) -> str:
        if address is None:
            return ""
        for peer, (base, _, _) in self._known().items():
            if shift_port(base, shard) == address:
                return peer
        return ""

    def peer_urls(self) -> dict[str, str]:
        """Every other node's HTTP base URL, as the groups last reported their members."""
        return {node: http for node, (_, http, _) in self._known().items() if node != self.self_id and http}

    def raft_of(self, node: str) -> str | None:
        """Node's shard 0 raft address, if any group or the static peers name it."""
        known = self._known().get(node)
        return known[0] if known else None

    def http_of(self, node: str) -> str:
        known = self._known().get(node)
        return known[1] if known else ""

    def leader_url(self, shard: int) -> Callable[[str | None], str | None]:
        def url(address: str | None) -> str | None:
            return self.http_of(self.id_of(address, shard)) or None

        return url

    def leader_streams(self, shard: int) -> Callable[[str | None], dict[str, str]]:
        def urls(address: str | None) -> dict[str, str]:
            known = self._known().get(self.id_of(address, shard))
            return dict(known[2]) if known else {}

        return urls

    def status(
        self, groups: Sequence[GroupView], ready_of: Callable[[str], bool | None] = lambda node: None
    ) -> list[GroupStatus]:
        """Each group's leader, term and voters; `ready_of(node id)` says who is ready."""
        rows = []
        for shard, group in enumerate(groups):
            leader = group.leader_address or ""
            leader_id = self.id_of(leader, shard)
            rows.append(
                GroupStatus(
                    shard_idx=shard,
                    is_leader=group.is_leader,
                    self_id=self.self_id,
                    self_addr=self.self_addr(shard),
                    leader_id=leader_id,
                    leader_addr=leader,
                    leader_http_addr=self.http_of(leader_id),
                    term_changes=group.term_changes,
                    term=group.term,
                    nodes=self._nodes(shard, group, ready_of),
                )
            )
        return rows

    def _nodes(
        self, shard: int, group: GroupView, ready_of: Callable[[str], bool | None]
    ) -> tuple[NodeStatus, ...]:
        matched = group.peer_match_indexes()
        known = self._known()
        voters = self.voters.get(shard)
        nodes = []
        for peer in sorted(voters if voters is not None else self.peers):
            base, http, _ = known[peer]
            addr = shift_port(base, shard)
            applied = group.applied_index if peer == self.self_id else matched.get(addr)
            nodes.append(NodeStatus(peer, addr, http, applied, ready_of(peer)))
        return tuple(nodes)
