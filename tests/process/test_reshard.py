"""`codeq reshard` on real processes: one shard → four → two, with every task, result, DLQ entry
and idempotency key carried over, the source left as it was, and live or used directories
refused."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from codeq.engine.shards import key_shard, shard_of
from tests.support import mixed_tasks
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

CODEQ = str(Path(sys.executable).parent / "codeq")


def streams() -> list[str]:
    # Not --dev's fixed stream ports 9092 and 9091, which another test process may hold.
    return [f"--{kind}-stream-addr=127.0.0.1:{free_port()}" for kind in ("producer", "worker")]


def codeq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CODEQ, *args], capture_output=True, text=True, timeout=120)


def contents(root: Path) -> dict[str, str]:
    """Every file under `root` by relative path -> a digest of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def reshard(source: Path, target: Path, shards: int) -> str:
    before = contents(source)
    done = codeq("reshard", "--from", str(source), "--to", str(target), "--shards", str(shards))
    assert done.returncode == 0, done.stdout + done.stderr
    assert contents(source) == before, "reshard changed its source"
    return done.stdout


def serve(data: Path, shards: int) -> ServerProcess:
    server = ServerProcess(data, args=[*streams(), "--shards", str(shards)])
    server.start()
    return server


def test_one_shard_becomes_four_then_two_and_keeps_every_task(tmp_path: Path) -> None:
    one = serve(tmp_path / "one", 1)
    try:
        mixed = mixed_tasks.make(one.url)
    finally:
        assert one.terminate() == 0
    report = reshard(tmp_path / "one", tmp_path / "four", 4)
    assert f"{len(mixed.statuses) + len(mixed.dead)} tasks" in report, report
    # Results: the two completed tasks' and the dead-lettered one's.
    assert "3 results" in report and "12 idempotency keys" in report and "1 DLQ entries" in report
    # The retries below must find tasks whose id routes away from their key's shard.
    for shards in (4, 2):
        assert any(shard_of(t, shards) != key_shard("dev", k, shards) for k, t in mixed.keys.items())

    four = serve(tmp_path / "four", 4)
    try:
        mixed_tasks.check_carried_over(four.url, mixed)
        mixed_tasks.check_lease_fenced(four.url, mixed)
        mixed_tasks.take_pending(four.url, mixed, "render")
    finally:
        assert four.terminate() == 0

    reshard(tmp_path / "four", tmp_path / "two", 2)
    two = serve(tmp_path / "two", 2)
    try:
        mixed_tasks.check_carried_over(two.url, mixed)
        mixed_tasks.check_lease_fenced(two.url, mixed)
        mixed_tasks.take_pending(two.url, mixed, "report")
        with mixed_tasks.client(two.url) as http:
            assert mixed_tasks.create(http, "render", idempotencyKey="new") not in mixed.statuses
    finally:
        assert two.terminate() == 0


def node_pids(pid: int) -> set[int]:
    """A node's process and its shard processes (ADR 0009)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {pid, *map(int, children)}


def test_a_directory_a_live_server_holds_is_refused(tmp_path: Path) -> None:
    stopped = serve(tmp_path / "stopped", 1)
    assert stopped.terminate() == 0
    server = serve(tmp_path / "live", 2)
    try:
        assert server.proc is not None
        for source, target in (("live", "new"), ("stopped", "live")):
            done = codeq(
                "reshard", "--from", str(tmp_path / source), "--to", str(tmp_path / target), "--shards", "3"
            )
            assert done.returncode == 2, done.stdout + done.stderr
            (line,) = done.stderr.splitlines()
            # The pid of the process holding the store: the node's own, or its shard process's.
            holder = int(line.rpartition("(pid ")[2].rstrip(")"))
            assert "is in use by another process" in line and holder in node_pids(server.proc.pid)
            assert str(tmp_path / "live") in line
    finally:
        assert server.terminate() == 0
    assert not (tmp_path / "new").exists()


def test_a_target_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    stopped = serve(tmp_path / "old", 1)
    assert stopped.terminate() == 0
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("keep me")
    done = codeq("reshard", "--from", str(tmp_path / "old"), "--to", str(tmp_path / "used"), "--shards", "2")
    assert done.returncode == 1 and "is not empty" in done.stderr
    assert contents(tmp_path / "used") == {"notes.txt": hashlib.sha256(b"keep me").hexdigest()}
