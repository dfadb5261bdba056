"""`codeq backup` under write load, then `codeq restore` and a server on the restored data."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

CODEQ = str(Path(sys.executable).parent / "codeq")
PRODUCER = {"Authorization": "Bearer dev-producer"}


class Writer(threading.Thread):
    """Creates tasks until stopped, recording each id once the server acknowledged it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failures = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=PRODUCER, timeout=10) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                reply = client.post("/v1/codeq/tasks", json={"command": "load", "payload": {"n": n}})
                if reply.status_code == 202:
                    with self.lock:
                        self.acknowledged.append(reply.json()["id"])
                else:
                    self.failures += 1

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.acknowledged)

    def wait_for(self, count: int) -> None:
        while len(self.snapshot()) < count:
            self.stop.wait(0.01)  # polling a real process's progress


def run_codeq(*args: str, url: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEQ_PRODUCER_TOKEN": "dev-producer", "CODEQ_BASE_URL": url}
    return subprocess.run([CODEQ, *args], capture_output=True, text=True, timeout=120, env=env)


IN_PROCESS = ["--shards", "2", "--no-shard-processes"]
PER_PROCESS = ["--shards", "2", "--shard-processes"]  # ADR 0009: the same data layout


@pytest.mark.parametrize(
    ("serving", "restoring"),
    [(IN_PROCESS, IN_PROCESS), (PER_PROCESS, IN_PROCESS), (IN_PROCESS, PER_PROCESS)],
    ids=["in-process", "from-shard-processes", "to-shard-processes"],
)
def test_backup_during_writes_restores_every_write_acknowledged_before_it(
    tmp_path: Path, serving: list[str], restoring: list[str]
) -> None:
    server = ServerProcess(tmp_path / "data", args=serving, env={"BACKUP_ROOT": str(tmp_path)})
    restored = ServerProcess(tmp_path / "restored", args=restoring)
    writer = Writer(server.url)
    try:
        server.start()
        writer.start()
        writer.wait_for(300)
        before = writer.snapshot()
        backup = run_codeq("backup", str(tmp_path / "backup"), "--json", url=server.url)
        assert backup.returncode == 0, backup.stderr
        writer.wait_for(len(before) + 100)  # the server kept serving writes after the backup
        writer.stop.set()
        writer.join(10)
        server.terminate()
        done = run_codeq("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "restored"))
        assert done.returncode == 0, done.stderr
        assert "--shards 2" in done.stdout
        restored.start()
        with httpx.Client(base_url=restored.url, headers=PRODUCER, timeout=10) as client:
            missing = [i for i in before if client.get(f"/v1/codeq/tasks/{i}").status_code != 200]
            stats = client.get("/v1/codeq/admin/queues/load").json()
        assert missing == []
        assert len(before) <= stats["ready"] <= len(writer.snapshot())
        assert writer.failures == 0
    finally:
        writer.stop.set()
        server.stop()
        restored.stop()


def test_restore_refuses_a_non_empty_target_and_a_non_backup(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "file").write_text("x")
    (tmp_path / "backup").mkdir()
    not_backup = run_codeq("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "new"))
    assert not_backup.returncode == 1 and "not a codeq backup" in not_backup.stderr
    (tmp_path / "backup" / "codeq-backup.json").write_text('{"numShards": 1}')
    busy = run_codeq("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "target"))
    assert busy.returncode == 1 and "not empty" in busy.stderr
    incomplete = run_codeq("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "new"))
    assert incomplete.returncode == 1 and "missing" in incomplete.stderr


def test_restore_forgets_the_raft_log_position_of_a_replicas_copy(tmp_path: Path) -> None:
    from codeq.kv.rocks import RocksKV
    from codeq.replication.snapshot import APPLIED_KEY, applied_value

    backup = tmp_path / "backup"
    store = RocksKV(str(backup / "shard0"))
    store.write({APPLIED_KEY: applied_value(42), b"L/some-task": b"x"}, sync=True)
    store.close()
    (backup / "codeq-backup.json").write_text('{"numShards": 1}')
    done = run_codeq("restore", str(backup), "--data", str(tmp_path / "new"), "--json")
    assert done.returncode == 0, done.stderr
    restored = RocksKV(str(tmp_path / "new"))
    try:
        assert restored.get(APPLIED_KEY) is None and restored.get(b"L/some-task") == b"x"
    finally:
        restored.close()
