"""docs/migration-single-to-raft.md, run as written: back up one node with the page's
`codeq backup` command, restore it into three data directories with its `codeq restore`
command, start a three-node Raft cluster on them, and find every task on every node."""

from __future__ import annotations

import os
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cluster.support import PRODUCER, WORKER, Cluster, until
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

DOC = Path(__file__).resolve().parents[2] / "docs" / "migration-single-to-raft.md"
CODEQ = str(Path(sys.executable).parent / "codeq")


def documented(command: str) -> list[str]:
    """The page's one `codeq <command> …` line, from its shell blocks, as an argument list."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    (found,) = [line for line in lines if line.startswith(f"codeq {command} ")]
    return shlex.split(found)


def run_documented(command: str, variables: dict[str, str]) -> None:
    words = [string.Template(word).substitute(variables) for word in documented(command)]
    env = {**os.environ, "CODEQ_BASE_URL": "", "CODEQ_PRODUCER_TOKEN": ""}
    done = subprocess.run([CODEQ, *words[1:]], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"{words}: {done.stdout}{done.stderr}"


def seed(url: str) -> dict[str, str]:
    """Tasks in three states on the single node: task id -> the status it must keep."""
    states: dict[str, str] = {}
    with httpx.Client(base_url=f"{url}/v1/codeq", timeout=10) as client:
        for n in range(30):
            created = client.post("/tasks", json={"command": "render", "payload": {"n": n}}, headers=PRODUCER)
            assert created.status_code == 202, created.text
            states[created.json()["id"]] = "PENDING"
        for n in range(6):
            claimed = client.post("/tasks/claim", json={"commands": ["render"]}, headers=WORKER)
            assert claimed.status_code == 200, claimed.text
            task_id = claimed.json()["id"]
            states[task_id] = "IN_PROGRESS"
            if n % 2 == 0:
                body = {"status": "COMPLETED", "result": {"n": n}}
                done = client.post(f"/tasks/{task_id}/result", json=body, headers=WORKER)
                assert done.status_code == 200, done.text
                states[task_id] = "COMPLETED"
    return states


def statuses(cluster: Cluster, node: str, task_ids: set[str]) -> dict[str, str]:
    found = {}
    with httpx.Client(base_url=f"{cluster.url(node)}/v1/codeq", headers=PRODUCER, timeout=5) as client:
        for task_id in task_ids:
            reply = client.get(f"/tasks/{task_id}")
            if reply.status_code == 200:
                found[task_id] = reply.json()["status"]
    return found


def test_the_documented_migration_keeps_every_task(tmp_path: Path) -> None:
    # Not --dev's fixed stream ports 9092 and 9091, which another test process may hold.
    streams = [f"--{kind}-stream-addr=127.0.0.1:{free_port()}" for kind in ("producer", "worker")]
    old = ServerProcess(tmp_path / "old", args=streams, env={"BACKUP_ROOT": str(tmp_path / "backups")})
    old.start()
    try:
        states = seed(old.url)
        backup_dir = str(tmp_path / "backups" / "to-raft")
        run_documented(
            "backup", {"BACKUP_DIR": backup_dir, "OLD_URL": old.url, "ADMIN_TOKEN": "dev-producer"}
        )
    finally:
        assert old.terminate() == 0
    cluster = Cluster(tmp_path / "cluster")
    for node in cluster.ids:
        data_dir = str(cluster.nodes[node].data)
        run_documented("restore", {"BACKUP_DIR": backup_dir, "DATA_DIR": data_dir})
    try:
        cluster.start()
        leader = cluster.wait_leader()
        for node in cluster.ids:
            until(
                lambda node=node: statuses(cluster, node, set(states)) == states,
                what=f"every task, in its state, on {node}",
            )
        completed = next(t for t, s in states.items() if s == "COMPLETED")
        url = f"{cluster.url(leader)}/v1/codeq/tasks/{completed}/result"
        result = httpx.get(url, headers=PRODUCER, timeout=5)
        assert result.status_code == 200, result.text
        assert result.json()["result"]["status"] == "COMPLETED"
        created = cluster.create(leader, {"command": "render", "payload": {"after": "migration"}})
        assert created.status_code == 202, created.text
        new_id = created.json()["id"]
        until(lambda: all(cluster.has_task(i, new_id) for i in cluster.ids), what="the new write everywhere")
    finally:
        cluster.stop()
