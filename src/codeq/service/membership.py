"""Raft membership changes, the operator's use case: add or remove one node in one shard's group.

One change at a time, through the group's log (replication/membership.py). The rules: no
change while another is in flight; never remove the last voter, nor a voter when the rest
alive would be no majority of what remains; an even number of voters afterwards only when the
operator insists (`force`): four tolerate one failure like three, and need one more ack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import msgspec

from codeq.auth.principal import Principal
from codeq.core.errors import Conflict, InvalidInput, NotFound, NotLeader, Unavailable, WrongState
from codeq.replication.group import RaftGroup
from codeq.replication.membership import Change, Member, change_members, check_member
from codeq.replication.raft import RaftCore


class MembershipOutcome(msgspec.Struct, frozen=True):
    shard: int
    op: str
    node: str
    voters: list[str]
    warning: str = ""


class MemberRequest(msgspec.Struct, frozen=True):
    """One change as the process running the shard's group receives it (ADR 0009): the
    operator's rights were checked where the request arrived."""

    shard: int
    op: str  # "add" | "remove"
    force: bool
    member: Member | None = None  # add
    node: str = ""  # remove


# Sends a change to the process that runs that shard's group (a process per shard).
Elsewhere = Callable[[MemberRequest], Awaitable[MembershipOutcome]]


def even_warning(voters: int) -> str:
    return (
        f"this change leaves {voters} voters: an even-sized group tolerates no more failures than "
        f"one node fewer ({voters // 2 - 1 if voters > 1 else 0} of {voters}) and needs one more "
        "acknowledgement per write; make it odd again (add or remove one node) or pass force"
    )


class MembershipService:
    """`groups`: this process's groups by shard number (all of them, or its own shard's with
    a process per shard, where `elsewhere` reaches the others)."""

    def __init__(
        self,
        groups: Mapping[int, RaftGroup],
        self_id: str,
        num_shards: int,
        elsewhere: Elsewhere | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        self.groups = groups
        self.self_id = self_id
        self.num_shards = num_shards
        self.elsewhere = elsewhere
        self.timeout_s = timeout_s

    async def add(
        self, principal: Principal, shard: int, member: Member, *, force: bool
    ) -> MembershipOutcome:
        principal.require_operator()
        check_member(member)
        return await self.apply(MemberRequest(shard, "add", force, member=member))

    async def remove(self, principal: Principal, shard: int, node: str, *, force: bool) -> MembershipOutcome:
        principal.require_operator()
        return await self.apply(MemberRequest(shard, "remove", force, node=node))

    async def apply(self, request: MemberRequest) -> MembershipOutcome:
        """Make the change here if this process runs the shard's group, else where it runs."""
        if not self.groups and self.elsewhere is None:
            raise InvalidInput("raft is not enabled on this node", field="shard")
        if not 0 <= request.shard < self.num_shards:
            raise InvalidInput(f"shard must be 0..{self.num_shards - 1}", field="shard")
        if request.shard not in self.groups:
            if self.elsewhere is None:
                raise InvalidInput(f"shard {request.shard}'s group does not run here", field="shard")
            return await self.elsewhere(request)
        if request.op == "add" and request.member is not None:
            return await self._add(request.shard, request.member, request.force)
        if request.op == "remove":
            return await self._remove(request.shard, request.node, request.force)
        raise InvalidInput("op must be add (with a member) or remove", field="op")

    def _core(self, shard: int) -> tuple[RaftGroup, RaftCore]:
        group = self.groups[shard]
        core = group.core
        if not isinstance(core, RaftCore) or core.members is None:
            raise InvalidInput("this group's membership is fixed", field="shard")
        if not core.is_leader:
            raise group.not_leader()
        return group, core

    async def _add(self, shard: int, member: Member, force: bool) -> MembershipOutcome:
        _, core = self._core(shard)
        assert core.members is not None
        current = core.members.current
        if current.get(member.id) == member and not core.change_in_flight():
            # Already done (a retry whose first answer was lost): nothing to change.
            return MembershipOutcome(shard, "add", member.id, sorted(current))
        if member.id in current:
            raise Conflict(f"node {member.id} is already a voter of shard {shard}", field="id")
        if any(m.raft == member.raft for m in current.values()):
            raise Conflict(f"another voter already uses raft address {member.raft}", field="raft")
        return await self._change(shard, Change("add", member), len(current) + 1, force)

    async def _remove(self, shard: int, node: str, force: bool) -> MembershipOutcome:
        group, core = self._core(shard)
        assert core.members is not None
        current = core.members.current
        if node not in current:
            raise NotFound(f"node {node} is not a voter of shard {shard}")
        if len(current) == 1:
            raise WrongState("refused: that is the group's last voter")
        alive = core.connected_voters() - {node}
        needed = (len(current) - 1) // 2 + 1
        if len(alive) < needed:
            raise WrongState(
                f"refused: without {node} shard {shard} would have {len(current) - 1} voters of which "
                f"{len(alive)} are reachable, fewer than the {needed} a majority needs: bring nodes "
                "back first"
            )
        if node == self.self_id:
            # A leader cannot remove itself: hand over, and the caller follows the 307.
            if await group.transfer_leadership(None, 3.0) is None:
                raise Unavailable("could not hand leadership over before removing this node; retry")
            raise group.not_leader()
        return await self._change(shard, Change("remove", current[node]), len(current) - 1, force)

    async def _change(self, shard: int, change: Change, after: int, force: bool) -> MembershipOutcome:
        warning = even_warning(after) if after % 2 == 0 else ""
        if warning and not force:
            raise WrongState(f"refused: {warning}")
        group, core = self._core(shard)
        try:
            await change_members(core, change, self.timeout_s)
        except NotLeader:
            raise group.not_leader() from None  # lost leadership first: name the new leader
        assert core.members is not None
        voters = sorted(core.members.current)
        return MembershipOutcome(shard, change.op, change.member.id, voters, warning)
