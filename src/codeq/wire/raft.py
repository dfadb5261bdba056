"""JSON shape of GET /v1/codeq/raft/status (spec 02 §4.14, spec 06 §9.3)."""

from __future__ import annotations

import msgspec


class RaftNodeJSON(msgspec.Struct, rename="camel", kw_only=True):
    """One voter of the group. `appliedIndex`: this node's own last applied log index; for a
    peer, the leader's match index for it (the highest entry it is known to hold), so null
    unless this node leads the group. `ready`: this node's own readiness; for a peer, what its
    `/readyz` last answered to this node's background probe (false: not ready or no answer;
    null: not probed yet)."""

    id: str
    addr: str
    http_addr: str = msgspec.field(name="httpAddr")  # "" when not configured
    applied_index: int | None
    ready: bool | None


class RaftGroupJSON(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    shard_idx: int
    is_leader: bool
    self_id: str
    self_addr: str
    leader_id: str
    leader_addr: str
    has_leader: bool
    leader_http_addr: str = msgspec.field(default="", name="leaderHTTPAddr")  # omitted when empty
    term_changes: int = 0  # elections this node has seen since it started (omitted when none)
    term: int  # this node's current Raft term
    nodes: list[RaftNodeJSON]  # every voter, in id order


class RaftStatusJSON(msgspec.Struct, rename="camel", kw_only=True):
    enabled: bool
    num_groups: int


class RaftStatusWithGroupsJSON(RaftStatusJSON, kw_only=True):
    groups: list[RaftGroupJSON]


class TransferLeaderRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """POST /v1/codeq/admin/raft/transfer-leader: hand one shard's leadership to a node."""

    to: str
    shard: int = 0


class TransferLeaderJSON(msgspec.Struct, rename="camel", kw_only=True):
    shard_idx: int
    leader_id: str


class MembershipRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """POST /v1/codeq/admin/raft/members: add or remove one node in one shard's group (operator).
    `raft` is the node's shard 0 raft host:port (shard i: its port + i); `force` accepts an
    even number of voters afterwards."""

    op: str  # "add" | "remove"
    id: str
    shard: int = 0
    raft: str = ""
    http: str = ""
    producer_stream: str = ""
    worker_stream: str = ""
    force: bool = False


class MembershipJSON(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    shard_idx: int
    op: str
    id: str
    voters: list[str]
    warning: str = ""
