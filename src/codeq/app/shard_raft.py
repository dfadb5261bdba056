"""Raft with a process per shard (ADR 0009): each shard process runs its own shard's group;
this module is what one process tells the others of its group, and what it keeps of theirs
(for leadership-aware routing, `/readyz`, `/raft/status` and transfer-leader)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec

from codeq.cluster import codec
from codeq.cluster.channel import READ
from codeq.cluster.remote import PeerLink, RemoteShard
from codeq.replication.group import RaftGroup
from codeq.replication.membership import Member
from codeq.replication.raft import RaftCore
from codeq.service.membership import MemberRequest, MembershipOutcome

# How often a shard process asks the others for their group's state: the staleness of a
# remote shard's `is_leader` (a write sent on a stale view is refused by the group itself,
# NotLeader with the right URL, exactly as in one process) and of readiness.
REFRESH_SECONDS = 0.1
GROUP_READ = "raft_group"
TRANSFER_READ = "raft_transfer_leader"
MEMBERS_READ = "raft_members"
OutcomeT = TypeVar("OutcomeT")


class GroupSnapshot(msgspec.Struct, frozen=True):
    """One shard's Raft group as its own process sees it (a `GroupView` for the status)."""

    is_leader: bool
    leader_address: str | None
    term_changes: int
    term: int
    applied_index: int
    match_indexes: dict[str, int]
    problem: str  # why that process's store or group cannot take writes; "" when it can
    members: dict[str, Member] = {}  # its configuration (membership changes), when it has one

    def peer_match_indexes(self) -> dict[str, int]:
        return self.match_indexes


NOT_HEARD = GroupSnapshot(False, None, 0, 0, 0, {}, "not heard from yet")  # compared by identity


class RaftRemoteShard(RemoteShard):
    """A shard another process owns, whose Raft group may be led by another node: it counts
    as led here only while its process says its group leads (`GroupSnapshot.is_leader`)."""

    def __init__(self, number: int, link: PeerLink) -> None:
        super().__init__(number, link)
        self.group = NOT_HEARD

    @property
    def is_leader(self) -> bool:
        return self.link.connected and self.group.is_leader


class PeerGroups:
    """The other shard processes' groups, refreshed in the background (`refresh`)."""

    def __init__(
        self,
        remotes: dict[int, RaftRemoteShard],
        learn: Callable[[int, Mapping[str, Member]], None] = lambda shard, members: None,
    ) -> None:
        self.remotes = remotes
        self.learn = learn  # the topology hears each group's members, as from its own groups

    def view(self, number: int) -> GroupSnapshot:
        remote = self.remotes[number]
        return remote.group if remote.link.connected else NOT_HEARD

    def problem(self, number: int) -> str | None:
        """Why shard `number`'s process cannot take writes (its store or group), as it said."""
        remote = self.remotes[number]
        return None if remote.group is NOT_HEARD else remote.group.problem or None

    def waiting(self) -> str | None:
        """The first shard whose process has not said yet how its group is, if one has not."""
        for number, remote in sorted(self.remotes.items()):
            if remote.group is NOT_HEARD:
                return f"waiting for the raft state of shard {number}"
        return None

    async def refresh(self) -> int | None:
        """Ask every linked process for its group's state (a background tick)."""
        linked = [remote for remote in self.remotes.values() if remote.link.connected]
        answers = await asyncio.gather(*(_ask_group(r) for r in linked), return_exceptions=True)
        for remote, answer in zip(linked, answers, strict=True):
            if isinstance(answer, GroupSnapshot):
                if answer.members and answer.members != remote.group.members:
                    self.learn(remote.number, answer.members)
                remote.group = answer
        return None

    async def transfer_leader(self, shard: int, to: str) -> str:
        """Hand shard `shard`'s leadership to node `to` in the process running its group; a
        refusal (NotLeader with the leader's URL, an unknown node) comes back as it is."""
        remote = self.remotes[shard]
        raw = await remote.link.call(READ, (TRANSFER_READ, [shard, to]), f"shard {shard}")
        leader: str = codec.decode(raw, str)
        return leader

    async def change_members(self, request: MemberRequest) -> MembershipOutcome:
        """Add or remove a node in the group another process runs; refusals come back as
        they are (NotLeader with the leader's URL, a conflict, the even-number rule)."""
        remote = self.remotes[request.shard]
        raw = await remote.link.call(READ, (MEMBERS_READ, [request]), f"shard {request.shard}")
        outcome: MembershipOutcome = codec.decode(raw, MembershipOutcome)
        return outcome


async def _ask_group(remote: RemoteShard) -> GroupSnapshot:
    raw = await remote.link.call(READ, (GROUP_READ, []), f"shard {remote.number}")
    snapshot: GroupSnapshot = codec.decode(raw, GroupSnapshot)
    return snapshot


def own_group_reads(
    snapshot: Callable[[], GroupSnapshot],
    transfer: Callable[[int, str], Awaitable[str]],
    change_members: Callable[[MemberRequest], Awaitable[MembershipOutcome]],
) -> dict[str, Callable[..., Awaitable[Any]]]:
    """The reads this process serves its peers about its own group (and its replica)."""

    async def group() -> GroupSnapshot:
        return snapshot()

    async def transfer_leader(shard: int, to: str) -> str:
        return await transfer(shard, to)

    async def members(request: object) -> MembershipOutcome:
        return await change_members(msgspec.convert(request, MemberRequest))

    return {GROUP_READ: group, TRANSFER_READ: transfer_leader, MEMBERS_READ: members}


def snapshot_of(group: RaftGroup, problem: str | None) -> GroupSnapshot:
    """This process's group as it tells the others; `problem`: why its own store or group
    cannot take writes (`Shards.own_problem`), None when they can."""
    return GroupSnapshot(
        is_leader=group.is_leader,
        leader_address=group.leader_address,
        term_changes=group.term_changes,
        term=group.term,
        applied_index=group.applied_index,
        match_indexes=group.peer_match_indexes(),
        problem=problem or "",
        members=_members_of(group),
    )


def _members_of(group: RaftGroup) -> dict[str, Member]:
    core = group.core
    members = core.members if isinstance(core, RaftCore) else None
    return {} if members is None else dict(members.current)
