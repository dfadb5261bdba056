"""The raft settings: YAML block, RAFT_* variables, and the checks of spec 06 gap 7 / gap 14."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeq.config import ConfigError, Settings, load_settings
from codeq.config.raft import parse_map
from tests.unit.test_config import STATIC_AUTH as STATIC

THREE = {
    "RAFT_ENABLED": "true",
    "RAFT_SELF_ID": "a",
    "RAFT_BIND_ADDR": "127.0.0.1:7000",
    "RAFT_PEERS": "a=127.0.0.1:7000, b=127.0.0.1:7100 ,c=127.0.0.1:7200",
    "RAFT_PEER_HTTP_ADDRS": "a=http://127.0.0.1:8080,b=http://127.0.0.1:8081,c=http://127.0.0.1:8082",
    "RAFT_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret",
}


def load(env: dict[str, str], path: Path | None = None) -> Settings:
    return load_settings(config_path=None if path is None else str(path), environ={**STATIC, **env})


def problems(env: dict[str, str], path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(env, path)
    return caught.value.problems


def test_env_configures_a_three_node_cluster() -> None:
    raft = load({**THREE, "RAFT_HEARTBEAT_MS": "50", "RAFT_APPLY_TIMEOUT_SECONDS": "3"}).raft
    assert raft.enabled and raft.self_id == "a" and raft.secret == THREE["RAFT_SECRET"]
    assert raft.peers == {"a": "127.0.0.1:7000", "b": "127.0.0.1:7100", "c": "127.0.0.1:7200"}
    assert raft.peer_http_addrs["c"] == "http://127.0.0.1:8082"
    assert (raft.heartbeat_ms, raft.apply_timeout_seconds) == (50, 3)
    assert raft.timing()["leaderFallbackTimeout"] == 0.4


def test_yaml_block_with_env_overriding(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "raft:\n  enabled: true\n  selfId: a\n  bindAddr: 127.0.0.1:7000\n"
        f"  secret: {'y' * 32}\n"
        "  peers: {a: '127.0.0.1:7000'}\n  electionMS: 800\n"
    )
    raft = load({"RAFT_ELECTION_MS": "900"}, path).raft
    assert raft.enabled and raft.peers == {"a": "127.0.0.1:7000"} and raft.election_ms == 900


def test_env_maps_skip_malformed_pairs() -> None:
    assert parse_map("a=1,=2,b=,c,d = x=y ") == {"a": "1", "d": "x=y"}


@pytest.mark.parametrize("peers", ["a=127.0.0.1:7000,b=127.0.0.1:7100", "a=h:1,b=h:2,c=h:3,d=h:4"])
def test_even_sized_clusters_are_refused_with_the_reason(peers: str) -> None:
    found = problems({**THREE, "RAFT_PEERS": peers})
    assert any("even-sized cluster" in p and "two nodes tolerate none" in p for p in found)


def test_a_missing_secret_is_refused() -> None:
    found = problems({k: v for k, v in THREE.items() if k != "RAFT_SECRET"})
    assert any(p.startswith("raft.secret (RAFT_SECRET) is required") for p in found)


def test_a_short_secret_is_refused_with_the_reason_and_how_to_make_one() -> None:
    (found,) = [p for p in problems({**THREE, "RAFT_SECRET": "x" * 31}) if p.startswith("raft.secret")]
    assert "at least 32 characters" in found and "run code on every node" in found
    assert "secrets.token_urlsafe(32)" in found
    assert load({**THREE, "RAFT_SECRET": "x" * 32}).raft.secret == "x" * 32


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"RAFT_SELF_ID": "z"}, "raft.selfId 'z' not present in raft.peers"),
        ({"RAFT_PEER_HTTP_ADDRS": "a=http://x"}, "missing ['b', 'c']"),
        ({"RAFT_BIND_ADDR": "nowhere"}, "raft.bindAddr must look like host:port"),
        ({"RAFT_HEARTBEAT_MS": "400"}, "raft.electionMS must exceed three heartbeats"),
        ({"RAFT_LEADER_LEASE_MS": "500"}, "raft.leaderLeaseMS (500) must be shorter than raft.electionMS"),
        ({"RAFT_LEADER_LEASE_MS": "451"}, "(at most 450): the peers may elect another leader"),
        ({"RAFT_PEERS": "a=h:1,b=h:1,c=h:3"}, "raft.peers lists the same address twice"),
        ({"PERSISTENCE_PROVIDER": "memory"}, "raft.enabled requires an embedded store"),
    ],
)
def test_inconsistent_settings_are_refused(change: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in problems({**THREE, **change}))


def test_disabled_raft_is_not_checked() -> None:
    assert not load({"RAFT_SELF_ID": "lonely"}).raft.enabled


@pytest.mark.parametrize(
    ("bind", "agrees"),
    [
        ("127.0.0.1:7000", True),
        ("0.0.0.0:7000", True),  # every interface receives what is sent to the peers entry
        (":7000", True),
        ("[::]:7000", True),
        ("node-a:7000", True),  # a name may resolve to the peers entry's address
        ("127.0.0.1:7001", False),  # the peers would dial 7000, where nobody listens
        ("0.0.0.0:7001", False),
        ("10.0.0.9:7000", False),  # two different literal addresses
    ],
)
def test_bind_addr_must_agree_with_this_nodes_peers_entry(bind: str, agrees: bool) -> None:
    env = {**THREE, "RAFT_BIND_ADDR": bind}
    if agrees:
        assert load(env).raft.bind_addr == bind
    else:
        assert any("raft.bindAddr" in p and "raft.peers" in p for p in problems(env))


def test_a_node_behind_a_proxy_may_bind_elsewhere() -> None:
    env = {**THREE, "RAFT_BIND_ADDR": "127.0.0.1:7001", "RAFT_BIND_BEHIND_PROXY": "true"}
    assert load(env).raft.bind_behind_proxy
