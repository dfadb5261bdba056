"""The `raft:` settings (spec 06 §2): parsing of the YAML block and RAFT_* variables, and checks.

Timing keys keep the reference's names; PySyncObj's knobs differ, so they map as follows:
`heartbeatMS` is the leader's append/heartbeat period, `electionMS` the minimum election
timeout (the maximum is twice it), `leaderLeaseMS` how long after a majority last
acknowledged it a leader still counts as the only leader (replication/lease.py; it steps
down when the lease runs out; PySyncObj's leaderFallbackTimeout), and `applyTimeoutSeconds`
the proposal timeout. `commitMS` has no PySyncObj counterpart and is
accepted for compatibility only. `bootstrap` is accepted and has no effect: the static peer
list is the starting membership on every node, so there is nothing to bootstrap; later
changes go through the log (`codeq cluster add-node`, replication/membership.py). A node
added that way starts with `join: true`: its peer list then only says how to reach the
cluster, and it becomes a voter when the leader's log adds it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The lease must end before a majority can elect another leader (electionMS after it last
# heard from this one), with this share of electionMS to spare for clocks running at
# different rates on different nodes.
LEASE_DRIFT_MARGIN = 0.1
# A guessable secret is remote code execution on every node; 32 characters of token_urlsafe
# carry 192 bits.
MIN_SECRET_LENGTH = 32
# yaml key -> (field, env variable, kind)
KEYS: dict[str, tuple[str, str, str]] = {
    "enabled": ("enabled", "RAFT_ENABLED", "bool"),
    "selfId": ("self_id", "RAFT_SELF_ID", "str"),
    "bindAddr": ("bind_addr", "RAFT_BIND_ADDR", "str"),
    "bindBehindProxy": ("bind_behind_proxy", "RAFT_BIND_BEHIND_PROXY", "bool"),
    "bootstrap": ("bootstrap", "RAFT_BOOTSTRAP", "bool"),
    "join": ("join", "RAFT_JOIN", "bool"),
    "peers": ("peers", "RAFT_PEERS", "map"),
    "peerHTTPAddrs": ("peer_http_addrs", "RAFT_PEER_HTTP_ADDRS", "map"),
    "peerProducerStreamAddrs": ("peer_producer_streams", "RAFT_PEER_PRODUCER_STREAM_ADDRS", "map"),
    "peerWorkerStreamAddrs": ("peer_worker_streams", "RAFT_PEER_WORKER_STREAM_ADDRS", "map"),
    "secret": ("secret", "RAFT_SECRET", "str"),
    "muxEnabled": ("mux_enabled", "RAFT_MUX_ENABLED", "bool"),
    "heartbeatMS": ("heartbeat_ms", "RAFT_HEARTBEAT_MS", "int"),
    "electionMS": ("election_ms", "RAFT_ELECTION_MS", "int"),
    "leaderLeaseMS": ("leader_lease_ms", "RAFT_LEADER_LEASE_MS", "int"),
    "commitMS": ("commit_ms", "RAFT_COMMIT_MS", "int"),
    "applyTimeoutSeconds": ("apply_timeout_seconds", "RAFT_APPLY_TIMEOUT_SECONDS", "int"),
}


@dataclass(frozen=True, slots=True)
class RaftSettings:
    enabled: bool = False
    self_id: str = ""
    bind_addr: str = ""
    # This node's raft.peers entry is a proxy or port mapping in front of bindAddr, so the two
    # may differ on purpose; without it they must agree.
    bind_behind_proxy: bool = False
    bootstrap: bool = False
    join: bool = False  # added by `codeq cluster add-node`: learn the membership from the leader
    peers: Mapping[str, str] = field(default_factory=dict)  # id -> raft host:port, self included
    peer_http_addrs: Mapping[str, str] = field(default_factory=dict)  # id -> http(s) base URL
    # id -> grpc://host:port of that node's producer / worker stream, optional: a follower's
    # stream ends as not-leader naming the leader's, and the SDK reconnects there.
    peer_producer_streams: Mapping[str, str] = field(default_factory=dict)
    peer_worker_streams: Mapping[str, str] = field(default_factory=dict)
    secret: str = ""
    mux_enabled: bool = False
    heartbeat_ms: int = 50
    election_ms: int = 500
    leader_lease_ms: int = 400
    commit_ms: int = 50
    apply_timeout_seconds: int = 10

    def timing(self) -> dict[str, float]:
        """PySyncObj's timing knobs for these settings."""
        return {
            "appendEntriesPeriod": self.heartbeat_ms / 1000,
            "raftMinTimeout": self.election_ms / 1000,
            "raftMaxTimeout": 2 * self.election_ms / 1000,
            "connectionTimeout": max(3.5, 2 * self.election_ms / 1000),
            "leaderFallbackTimeout": self.leader_lease_ms / 1000,
        }


def parse_map(text: str) -> dict[str, str]:
    """`id=value,id=value` (spec 06 §2.1): trimmed, split at the first `=`, empty halves skipped."""
    result: dict[str, str] = {}
    for pair in text.split(","):
        key, eq, value = pair.strip().partition("=")
        if eq and key.strip() and value.strip():
            result[key.strip()] = value.strip()
    return result


def from_yaml(block: object, problems: list[str]) -> dict[str, Any]:
    if not isinstance(block, dict):
        problems.append("raft must be a mapping")
        return {}
    values: dict[str, Any] = {}
    for name, raw in block.items():
        spec = KEYS.get(str(name))
        if spec is None:
            problems.append(f"raft: unknown key {name!r}")
            continue
        target, _, kind = spec
        value = _coerce(kind, raw)
        if value is None:
            problems.append(f"raft.{name} has the wrong type, got {str(raw)[:40]!r}")
        else:
            values[target] = value
    return values


def from_env(env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for target, variable, kind in KEYS.values():
        text = env.get(variable, "")
        if not text:
            continue
        if kind == "bool":
            values[target] = text.strip().lower() in ("true", "yes", "1")
        elif kind == "map":
            parsed = parse_map(text)
            if parsed:
                values[target] = parsed
        elif kind == "int":
            try:
                values[target] = int(text.strip())
            except ValueError:
                problems.append(f"{variable} must be an integer, got {text[:40]!r}")
        else:
            values[target] = text.strip()
    return values


def _coerce(kind: str, raw: object) -> object:
    if kind == "bool":
        return raw if isinstance(raw, bool) else None
    if kind == "int":
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if kind == "map":
        if not isinstance(raw, dict):
            return None
        return {str(k).strip(): str(v).strip() for k, v in raw.items()}
    return str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else None


def check(raft: RaftSettings, *, provider: str, valid_address: Any) -> list[str]:
    """Every problem with an enabled raft block (spec 06 gap 7 and gap 14)."""
    if not raft.enabled:
        return []
    problems: list[str] = []
    if provider == "memory":
        problems.append("raft.enabled requires an embedded store (persistenceProvider embedded/pebble)")
    if not raft.self_id.strip():
        problems.append("raft.selfId is required when raft is enabled")
    if not raft.bind_addr.strip() or valid_address(raft.bind_addr) is None:
        problems.append(f"raft.bindAddr must look like host:port, got {raft.bind_addr!r}")
    if not raft.secret:
        problems.append(
            "raft.secret (RAFT_SECRET) is required when raft is enabled: without it the Raft port "
            "accepts and unpickles messages from anyone who can reach it"
        )
    elif len(raft.secret) < MIN_SECRET_LENGTH:
        problems.append(
            f"raft.secret (RAFT_SECRET) must be at least {MIN_SECRET_LENGTH} characters: whoever "
            "holds it can run code on every node (PySyncObj unpickles what its peers send); "
            "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if raft.mux_enabled:
        problems.append("raft.muxEnabled is not supported: each shard group uses bindAddr port + shard")
    problems += _check_peers(raft, valid_address)
    problems += _check_timing(raft)
    return problems


def _check_peers(raft: RaftSettings, valid_address: Any) -> list[str]:
    peers = raft.peers or {raft.self_id: raft.bind_addr}
    problems = [
        f"raft.peers.{i} must look like host:port, got {a!r}"
        for i, a in peers.items()
        if valid_address(a) is None
    ]
    if raft.self_id and raft.self_id not in peers:
        problems.append(f"raft.selfId {raft.self_id!r} not present in raft.peers")
    elif (
        raft.self_id
        and not raft.bind_behind_proxy
        and not _bind_agrees(raft.bind_addr, peers[raft.self_id], valid_address)
    ):
        # The peers dial this node at its raft.peers entry: a bind elsewhere starts normally and
        # leaves them dialing a port nobody listens on.
        problems.append(
            f"raft.bindAddr {raft.bind_addr!r} does not agree with this node's raft.peers entry "
            f"{peers[raft.self_id]!r}: same port, and the same host unless bindAddr binds every interface "
            "(raft.bindBehindProxy: true when a proxy or port mapping sits between them)"
        )
    if len(set(peers.values())) != len(peers):
        problems.append("raft.peers lists the same address twice")
    if len(peers) % 2 == 0 and not raft.join:
        problems.append(
            f"raft.peers has {len(peers)} voters: an even-sized cluster tolerates no more failures "
            "than one node smaller (two nodes tolerate none, since a majority of two is two); "
            "use one node or three (or five)"
        )
    if len(peers) > 1:
        missing = sorted(set(peers) - set(raft.peer_http_addrs))
        if missing:
            problems.append(
                "raft.peerHTTPAddrs must name every peer's HTTP base URL (for 307 redirects); "
                f"missing {missing}"
            )
    return problems


_WILDCARD_HOSTS = frozenset(("", "0.0.0.0", "::", "[::]"))


def _bind_agrees(bind_addr: str, advertised: str, valid_address: Any) -> bool:
    """Whether binding `bind_addr` receives what is sent to `advertised` (unparsable: said elsewhere)."""
    bind, peer = valid_address(bind_addr), valid_address(advertised)
    if bind is None or peer is None:
        return True
    (bind_host, bind_port), (peer_host, peer_port) = bind, peer
    if bind_port != peer_port:
        return False
    # A name may resolve to the bound address: only two differing literal addresses surely disagree.
    return (
        bind_host in _WILDCARD_HOSTS
        or not (_is_ip(bind_host) and _is_ip(peer_host))
        or bind_host == peer_host
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _check_timing(raft: RaftSettings) -> list[str]:
    problems = [
        f"raft.{name} must be positive, got {value}"
        for name, value in (
            ("heartbeatMS", raft.heartbeat_ms),
            ("electionMS", raft.election_ms),
            ("leaderLeaseMS", raft.leader_lease_ms),
            ("commitMS", raft.commit_ms),
            ("applyTimeoutSeconds", raft.apply_timeout_seconds),
        )
        if value <= 0
    ]
    if not problems and raft.election_ms <= 3 * raft.heartbeat_ms:
        problems.append("raft.electionMS must exceed three heartbeats (3 × raft.heartbeatMS)")
    if not problems and raft.leader_lease_ms <= raft.heartbeat_ms:
        problems.append("raft.leaderLeaseMS must exceed raft.heartbeatMS")
    if not problems:
        problems += _check_lease(raft)
    return problems


def _check_lease(raft: RaftSettings) -> list[str]:
    longest = int(raft.election_ms * (1 - LEASE_DRIFT_MARGIN))
    if raft.leader_lease_ms <= longest:
        return []
    return [
        f"raft.leaderLeaseMS ({raft.leader_lease_ms}) must be shorter than raft.electionMS "
        f"({raft.election_ms}), with {LEASE_DRIFT_MARGIN:.0%} of it to spare for clock drift "
        f"(at most {longest}): the peers may elect another leader once they have not heard from "
        "this one for electionMS, and a leader whose lease outlasts that would serve stale "
        "reads and run leader-only work (webhooks, sweeps) alongside the new one"
    ]
