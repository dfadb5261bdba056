"""`shardProcesses` (ADR 0009) runs with every mode: Raft, HTTP port 0, a metrics listener."""

from __future__ import annotations

import dataclasses

from codeq.config import Settings
from codeq.config.checks import validate
from codeq.config.raft import RaftSettings
from codeq.config.tree import HttpSettings, ObservabilitySettings, StoreSettings

STORE = StoreSettings(num_shards=2, shard_processes=True)


def problems(settings: Settings) -> list[str]:
    return [p for p in validate(settings) if "shardProcesses" in p]


def test_shard_processes_alone_are_accepted() -> None:
    assert problems(Settings(store=STORE)) == []
    # One shard needs no supervisor: the flag changes nothing and is not an error.
    assert problems(Settings(store=dataclasses.replace(STORE, num_shards=1), http=HttpSettings(port=0))) == []


def test_shard_processes_run_with_raft() -> None:
    base = Settings(store=STORE)
    raft = dataclasses.replace(base, raft=dataclasses.replace(RaftSettings(), enabled=True))
    assert problems(raft) == []


def test_port_zero_and_a_metrics_listener_run_with_shard_processes() -> None:
    base = Settings(store=STORE)
    port_zero = dataclasses.replace(base, http=dataclasses.replace(base.http, port=0))
    assert problems(port_zero) == []
    metrics = dataclasses.replace(base, observability=ObservabilitySettings(metrics_addr="127.0.0.1:9100"))
    assert problems(metrics) == []
