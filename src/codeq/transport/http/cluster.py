"""Cluster routes: GET /v1/codeq/raft/status (spec 02 §4.14), POST
/v1/codeq/admin/raft/transfer-leader (admin) and POST /v1/codeq/admin/raft/members
(operator; both beyond the reference)."""

from __future__ import annotations

from codeq.core.errors import InvalidInput
from codeq.replication.membership import Member
from codeq.service.container import Services
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.body import decode
from codeq.transport.http.errors import json_reply
from codeq.wire.raft import (
    MembershipJSON,
    MembershipRequest,
    RaftGroupJSON,
    RaftNodeJSON,
    RaftStatusJSON,
    RaftStatusWithGroupsJSON,
    TransferLeaderJSON,
    TransferLeaderRequest,
)


class ClusterRoutes:
    def __init__(self, services: Services, max_body_bytes: int = 4096) -> None:
        self.s = services
        self.max_body = max_body_bytes

    async def transfer_leader(self, request: Request) -> Reply:
        """`{"to": "NODE", "shard": N}` on the shard's leader (a follower answers 307 to it):
        the leader hands over to NODE and answers once NODE leads."""
        self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        body = decode(await request.body(self.max_body), TransferLeaderRequest)
        if self.s.transfer_leader is None:
            raise InvalidInput("raft is not enabled on this node", field="shard")
        leader = await self.s.transfer_leader(body.shard, body.to)
        return json_reply(TransferLeaderJSON(shard_idx=body.shard, leader_id=leader))

    async def members(self, request: Request) -> Reply:
        """Add or remove one node in one shard's group, on that group's leader (a follower
        answers 307 to it); answers once the change is committed."""
        principal = self.s.auth.producer(request.header(b"authorization"))
        principal.require_operator()
        body = decode(await request.body(self.max_body), MembershipRequest)
        service = self.s.membership
        if service is None:
            raise InvalidInput("raft is not enabled on this node", field="shard")
        if body.op == "add":
            streams = {"producer": body.producer_stream, "worker": body.worker_stream}
            member = Member(body.id, body.raft, body.http, {k: v for k, v in streams.items() if v})
            outcome = await service.add(principal, body.shard, member, force=body.force)
        elif body.op == "remove":
            outcome = await service.remove(principal, body.shard, body.id, force=body.force)
        else:
            raise InvalidInput("op must be add or remove", field="op")
        reply = MembershipJSON(
            shard_idx=outcome.shard,
            op=outcome.op,
            id=outcome.node,
            voters=outcome.voters,
            warning=outcome.warning,
        )
        return json_reply(reply)

    async def raft_status(self, request: Request) -> Reply:
        self.s.auth.any(request.header(b"authorization"))
        groups = self.s.raft_status()
        if not groups:
            return json_reply(RaftStatusJSON(enabled=False, num_groups=0))
        rows = [
            RaftGroupJSON(
                shard_idx=g.shard_idx,
                is_leader=g.is_leader,
                self_id=g.self_id,
                self_addr=g.self_addr,
                leader_id=g.leader_id,
                leader_addr=g.leader_addr,
                has_leader=bool(g.leader_id),
                leader_http_addr=g.leader_http_addr,
                term_changes=g.term_changes,
                term=g.term,
                nodes=[
                    RaftNodeJSON(
                        id=n.id,
                        addr=n.addr,
                        http_addr=n.http_addr,
                        applied_index=n.applied_index,
                        ready=n.ready,
                    )
                    for n in g.nodes
                ],
            )
            for g in groups
        ]
        return json_reply(RaftStatusWithGroupsJSON(enabled=True, num_groups=len(rows), groups=rows))
