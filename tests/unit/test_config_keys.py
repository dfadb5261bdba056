"""The key table: every setting of the tree has its names, and the loader reads every name listed."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from codeq.config import ConfigError, Settings, key_table, load_settings


def leaf_paths(value: object, prefix: str = "") -> dict[str, object]:
    """Every leaf setting of a settings tree, by dotted path, with its value."""
    leaves: dict[str, object] = {}
    for f in dataclasses.fields(value):  # type: ignore[arg-type]
        child = getattr(value, f.name)
        path = prefix + f.name
        if dataclasses.is_dataclass(child):
            leaves.update(leaf_paths(child, path + "."))
        else:
            leaves[path] = child
    return leaves


DEFAULTS = leaf_paths(Settings())


def test_every_setting_has_names_and_every_name_a_setting() -> None:
    listed = {row.setting for row in key_table() if row.setting}
    assert listed - DEFAULTS.keys() == set()
    # `dev` is the command line's --dev only: the public dev tokens are never turned on from a file.
    assert DEFAULTS.keys() - listed == {"dev"}


def test_no_name_is_listed_twice() -> None:
    envs = Counter(row.env for row in key_table() if row.env)
    yamls = Counter(row.yaml for row in key_table() if row.yaml)
    assert [name for name, n in envs.items() if n > 1] == []
    assert [name for name, n in yamls.items() if n > 1] == []


def test_the_reference_names_are_kept() -> None:
    rows = {(row.setting, row.yaml, row.env) for row in key_table()}
    assert ("store.provider", "persistenceProvider", "PERSISTENCE_PROVIDER") in rows
    assert ("store.num_shards", "persistenceConfig.numShards", "") in rows
    assert ("", "persistenceConfig", "PERSISTENCE_CONFIG") in rows
    assert ("raft.peers", "raft.peers", "RAFT_PEERS") in rows
    burst = ("rate_limit.worker_burst_size", "rateLimit.worker.burstSize", "RATE_LIMIT_WORKER_BURST_SIZE")
    assert burst in rows
    assert ("", "", "CODEQ_CONFIG_PATH") in rows


INT_ENVS = sorted(
    row.env
    for row in key_table()
    if row.env and isinstance(DEFAULTS.get(row.setting), int) and not isinstance(DEFAULTS[row.setting], bool)
)


@pytest.mark.parametrize("env", INT_ENVS)
def test_the_loader_reads_every_listed_integer_variable(env: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={env: "not-a-number"}, overrides={"dev": True})
    assert any(env in problem for problem in caught.value.problems), caught.value.problems
