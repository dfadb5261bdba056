"""docs/migration-single-to-raft.md, run as written: back up a live node with the page's
`codeq backup` command, initialise three data directories with its `codeq cluster init`
command, start each node with its `codeq serve` line, and find every task on every node."""

from __future__ import annotations

import json
import os
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cluster.support import Cluster, until
from tests.support import mixed_tasks
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

DOC = Path(__file__).resolve().parents[2] / "docs" / "migration-single-to-raft.md"
CODEQ = str(Path(sys.executable).parent / "codeq")
SHARDS = 2


def documented(command: str) -> list[str]:
    """The page's one line running `codeq <command> …` (after any VAR=value assignments), from
    its shell blocks, as a word list."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    (found,) = [line for line in lines if f"codeq {command} " in line]
    return shlex.split(found)


def substituted(command: str, variables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the line's environment assignments, its `codeq` arguments), variables filled in."""
    words = [string.Template(word).substitute(variables) for word in documented(command)]
    start = words.index("codeq")
    env = dict(word.split("=", 1) for word in words[:start])
    return env, words[start + 1 :]


def run_documented(command: str, variables: dict[str, str]) -> str:
    _, args = substituted(command, variables)
    env = {**os.environ, "CODEQ_BASE_URL": "", "CODEQ_PRODUCER_TOKEN": ""}
    done = subprocess.run([CODEQ, *args, "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def old_node(tmp_path: Path) -> ServerProcess:
    # Not --dev's fixed stream ports 9092 and 9091, which another test process may hold.
    streams = [f"--{kind}-stream-addr=127.0.0.1:{free_port()}" for kind in ("producer", "worker")]
    env = {"BACKUP_ROOT": str(tmp_path / "backups")}
    old = ServerProcess(tmp_path / "old", args=[*streams, "--shards", str(SHARDS)], env=env)
    old.start()
    return old


def back_up(old: ServerProcess, backup_dir: Path) -> None:
    variables = {"BACKUP_DIR": str(backup_dir), "OLD_URL": old.url, "ADMIN_TOKEN": "dev-producer"}
    run_documented("backup", variables)


def init(backup_dir: Path, data_dir: Path) -> dict[str, object]:
    variables = {"BACKUP_DIR": str(backup_dir), "DATA_DIR": str(data_dir), "NUM_SHARDS": str(SHARDS)}
    report: dict[str, object] = json.loads(run_documented("cluster init", variables))
    return report


def start_as_documented(cluster: Cluster) -> None:
    """Each node started with the page's `codeq serve` line (the harness adds --dev for its
    tokens, 127.0.0.1 and its stream ports; the line's own flags come last and win)."""
    peers = cluster.nodes["a"].env["RAFT_PEERS"]
    for node_id, node in cluster.nodes.items():
        variables = {
            "NODE_ID": node_id,
            "RAFT_ADDR": node.env["RAFT_BIND_ADDR"],
            "RAFT_PEERS": peers,
            "HTTP_PEERS": node.env["RAFT_PEER_HTTP_ADDRS"],
            "RAFT_SECRET": node.env["RAFT_SECRET"],
            "DATA_DIR": str(node.data),
            "NUM_SHARDS": str(SHARDS),
            "HTTP_PORT": str(node.port),
        }
        env, args = substituted("serve", variables)
        assert args[0] == "serve" and set(env) <= set(node.env), env
        node.env.update(env)
        node.args = args[1:]
    cluster.start()


def test_the_documented_migration_keeps_every_task(tmp_path: Path) -> None:
    old = old_node(tmp_path)
    try:
        mixed = mixed_tasks.make(old.url)
        backup_dir = tmp_path / "backups" / "to-raft"
        back_up(old, backup_dir)
        refused = subprocess.run(
            [CODEQ, "cluster", "init", "--from", str(backup_dir), "--data", str(old.data)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        (line,) = refused.stderr.splitlines()
        assert "is in use by another process" in line and str(old.data) in line
    finally:
        assert old.terminate() == 0
    cluster = Cluster(tmp_path / "cluster", shards=SHARDS)
    reports = [init(backup_dir, cluster.nodes[node].data) for node in cluster.ids]
    assert all(report["tasks"] == len(mixed.statuses) + len(mixed.dead) for report in reports)
    same = [{k: v for k, v in report.items() if k != "data"} for report in reports]
    assert same[0] == same[1] == same[2], "the nodes would not start from the same state"
    try:
        start_as_documented(cluster)
        for shard in range(SHARDS):
            cluster.wait_leader(shard)
        for node in cluster.ids:
            until(
                lambda node=node: (
                    mixed_tasks.statuses(cluster.url(node), list(mixed.statuses)) == mixed.statuses
                ),
                what=f"every task, in its state, on {node}",
            )
        # A batch's items go to each shard's leader, which need not be one node: not batched.
        mixed_tasks.check_carried_over(cluster.url("b"), mixed, batch=False)
        mixed_tasks.check_lease_fenced(cluster.url("c"), mixed)
        mixed_tasks.take_pending(cluster.url("a"), mixed, "render")
        with mixed_tasks.client(cluster.url("a")) as http:
            new_id = mixed_tasks.create(http, "render")
        until(lambda: all(cluster.has_task(i, new_id) for i in cluster.ids), what="the new write everywhere")
    finally:
        cluster.stop()


def test_a_node_initialised_from_another_backup_is_kept_out(tmp_path: Path) -> None:
    old = old_node(tmp_path)
    try:
        with mixed_tasks.client(old.url) as http:
            mixed_tasks.create(http, "render")
            back_up(old, tmp_path / "backups" / "first")
            mixed_tasks.create(http, "render")
            back_up(old, tmp_path / "backups" / "second")
    finally:
        assert old.terminate() == 0
    cluster = Cluster(tmp_path / "cluster", shards=SHARDS)
    init(tmp_path / "backups" / "first", cluster.nodes["a"].data)
    init(tmp_path / "backups" / "first", cluster.nodes["b"].data)
    init(tmp_path / "backups" / "second", cluster.nodes["c"].data)
    try:
        cluster.nodes["c"].launch()
        cluster.start("a", "b")
        cluster.wait_leader(0, among=["a", "b"])
        log = cluster.nodes["c"].log
        until(lambda: "this node from" in log.read_text(), what="c reports the other backup")

        def refused() -> bool:  # polled: each of c's shard processes says so once it met its peers
            ready = httpx.get(f"{cluster.url('c')}/readyz", timeout=5)
            return ready.status_code == 503 and "same backup" in ready.text

        until(refused, what="c unready, naming the other backup")
    finally:
        cluster.stop()
