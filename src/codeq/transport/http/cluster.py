"""Cluster routes: GET /v1/codeq/raft/status (spec 02 §4.14)."""

from __future__ import annotations

from codeq.service.container import Services
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.errors import json_reply
from codeq.wire.raft import RaftGroupJSON, RaftStatusJSON, RaftStatusWithGroupsJSON


class ClusterRoutes:
    def __init__(self, services: Services) -> None:
        self.s = services

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
            )
            for g in groups
        ]
        return json_reply(RaftStatusWithGroupsJSON(enabled=True, num_groups=len(rows), groups=rows))
