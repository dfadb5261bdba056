"""RocksDB's memory caps (issue 18): settings parsed, checked, and handed to every shard's store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from codeq.app import App
from codeq.core.clock import FakeClock
from codeq.kv.budget import MemoryBudget
from codeq.kv.rocks import RocksKV
from tests.api.conftest import make_settings
from tests.unit.test_config import load, problems, yaml_file

MiB = 1024 * 1024


def test_the_memory_caps_default_and_parse_from_yaml_and_the_environment(tmp_path: Path) -> None:
    defaults = load().store
    assert (defaults.block_cache_mb, defaults.write_buffer_mb, defaults.max_write_buffers) == (64, 16, 2)
    path = yaml_file(tmp_path, "persistenceConfig: {blockCacheMb: 7, writeBufferMb: 3, maxWriteBuffers: 4}\n")
    from_yaml = load(path=path).store
    assert (from_yaml.block_cache_mb, from_yaml.write_buffer_mb, from_yaml.max_write_buffers) == (7, 3, 4)
    env = {"PERSISTENCE_CONFIG": json.dumps({"blockCacheMb": 9})}
    assert load(env).store.block_cache_mb == 9


def test_memory_caps_that_cannot_work_are_refused() -> None:
    env = {"PERSISTENCE_CONFIG": json.dumps({"blockCacheMb": 0, "writeBufferMb": -1, "maxWriteBuffers": 1})}
    found = problems(env)
    assert "persistenceConfig.blockCacheMb must be positive, got 0" in found
    assert "persistenceConfig.writeBufferMb must be positive, got -1" in found
    assert "persistenceConfig.maxWriteBuffers must be at least 2, got 1" in found


def _options_file(path: Path) -> str:
    return sorted(path.glob("OPTIONS-*"))[-1].read_text()


def test_a_store_opens_with_its_budget(tmp_path: Path) -> None:
    store = RocksKV(
        str(tmp_path / "db"), MemoryBudget(block_cache_mb=7, write_buffer_mb=3, max_write_buffers=4)
    )
    try:
        assert store.memory_usage()["block_cache_capacity"] == 7 * MiB
    finally:
        store.close()
    options = _options_file(tmp_path / "db")
    assert f"write_buffer_size={3 * MiB}" in options
    assert "max_write_buffer_number=4" in options
    assert "cache_index_and_filter_blocks=true" in options


async def test_every_shard_store_of_a_node_gets_the_configured_caps(tmp_path: Path) -> None:
    settings = make_settings(provider="embedded", data_path=str(tmp_path / "data"), num_shards=2)
    store = dataclasses.replace(settings.store, block_cache_mb=5, write_buffer_mb=2, max_write_buffers=3)
    app = App(dataclasses.replace(settings, store=store), clock=FakeClock())
    await app.start()
    try:
        capacities = [
            committer.kv.memory_usage()["block_cache_capacity"] for committer in app.shards.committers
        ]
    finally:
        await app.stop()
    assert capacities == [5 * MiB, 5 * MiB]
    for shard in ("shard0", "shard1"):
        options = _options_file(tmp_path / "data" / shard)
        assert f"write_buffer_size={2 * MiB}" in options and "max_write_buffer_number=3" in options
