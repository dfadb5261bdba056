"""`codeq cluster init` checks the backup and the target before it writes anything, and leaves
a directory a Raft node starts from with a fresh log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codeq.engine.reshard import rewrite
from codeq.kv.rocks import RocksKV
from codeq.replication.snapshot import APPLIED_KEY, ORIGIN_KEY, applied_value
from tests.support.harness import EngineHarness

CODEQ = str(Path(sys.executable).parent / "codeq")


def make_backup(root: Path, num_shards: int = 2, *, stored_as: int | None = None) -> Path:
    """A backup as `codeq backup` writes it: the manifest and one store per shard, holding a
    few tasks routed for `stored_as` shards (default: `num_shards`)."""
    h = EngineHarness()
    for n in range(6):
        h.create(idempotency_key=f"k{n}")
    h.complete(h.claim()[0].id)
    root.mkdir(parents=True)
    stores = [RocksKV(str(root / f"shard{n}")) for n in range(num_shards)]
    try:
        rewrite([h.kv], stores[: stored_as or num_shards], drop=lambda key: False)
        for store in stores:  # a Raft node's copy carries its log position
            store.write({APPLIED_KEY: applied_value(42)}, sync=True)
    finally:
        for store in stores:
            store.close()
    manifest = {"format": 1, "numShards": num_shards, "createdMs": 1_700_000_000_000}
    (root / "codeq-backup.json").write_text(json.dumps(manifest))
    return root


def init(backup: Path, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [CODEQ, "cluster", "init", "--from", str(backup), "--data", str(data), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_a_node_directory_holds_each_shard_with_a_fresh_log_and_the_backup_id(tmp_path: Path) -> None:
    backup = make_backup(tmp_path / "backup")
    done = init(backup, tmp_path / "node", "--shards", "2", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tasks"] == 6 and report["results"] == 1 and report["numShards"] == 2
    for n in range(2):
        store = RocksKV(str(tmp_path / "node" / f"shard{n}"), read_only=True)
        try:
            assert store.get(APPLIED_KEY) is None  # the new log's first entries are applied
            assert store.get(ORIGIN_KEY) == report["backupId"].encode()
        finally:
            store.close()
    again = init(backup, tmp_path / "other", "--json")
    assert json.loads(again.stdout)["tasksChecksum"] == report["tasksChecksum"]


@pytest.mark.parametrize(
    ("case", "message", "code"),
    [
        ("shard count", "the backup has 2 shard(s), not 3", 2),
        ("missing shard", "is missing: not a complete codeq backup", 1),
        ("misrouted", "which belongs to shard", 1),
        ("used target", "is not empty", 1),
        ("no manifest", "is not a codeq backup", 1),
    ],
)
def test_a_bad_backup_or_target_is_refused_before_anything_is_written(
    tmp_path: Path, case: str, message: str, code: int
) -> None:
    backup = make_backup(tmp_path / "backup", stored_as=1 if case == "misrouted" else None)
    target = tmp_path / "node"
    extra = ["--shards", "3"] if case == "shard count" else []
    if case == "missing shard":
        (backup / "shard1").rename(tmp_path / "elsewhere")
    if case == "used target":
        target.mkdir()
        (target / "old.log").write_text("x")
    if case == "no manifest":
        (backup / "codeq-backup.json").unlink()
    done = init(backup, target, *extra)
    assert done.returncode == code, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert message in line
    left = ["old.log"] if case == "used target" else []
    assert not target.exists() or [path.name for path in target.iterdir()] == left
