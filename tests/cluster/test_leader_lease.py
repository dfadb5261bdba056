"""One leader at a time, seen from outside: a leader cut off from its peers stops saying it
leads (reads, /raft/status) before the majority elects another; leadership moves on demand
(`codeq cluster transfer-leader`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.support import PRODUCER, WORKER, Cluster, until

pytestmark = pytest.mark.timeout(90)


def transfer(cluster: Cluster, via: str, to: str, *more: str) -> subprocess.CompletedProcess[str]:
    """`codeq cluster transfer-leader`, asked of any node (a follower redirects)."""
    command = [sys.executable, "-m", "codeq.cli.main", "cluster", "transfer-leader", "--to", to]
    command += ["--url", cluster.url(via), "--json", *more]
    env = {**os.environ, "CODEQ_PRODUCER_TOKEN": PRODUCER["Authorization"].split()[1]}
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, check=False)


def lead_with(cluster: Cluster, node: str) -> None:
    leader = cluster.wait_leader()
    if leader != node:
        follower = next(i for i in cluster.ids if i not in (leader, node))
        done = transfer(cluster, follower, node)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout) == {"shardIdx": 0, "leaderId": node}
    until(lambda: cluster.leader_of() == node, 10, f"{node} leading")


class Watch:
    """Polls every node's /raft/status and a task read on the cut-off node, in that order,
    so that a row showing a new leader proves what the old one said afterwards."""

    def __init__(self, cluster: Cluster, old: str, task_id: str) -> None:
        self.cluster, self.old, self.task_id = cluster, old, task_id
        self.rows: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        others = [i for i in self.cluster.ids if i != self.old]
        with httpx.Client(timeout=2) as client:
            while not self.stop.is_set():
                row: dict[str, Any] = {"new": [i for i in others if self.leads(client, i)]}
                row["old_leads"] = self.leads(client, self.old)
                task = f"{self.cluster.url(self.old)}/v1/codeq/tasks/{self.task_id}"
                read = client.get(task, headers=PRODUCER)
                row["read"] = (read.json().get("status"), read.headers.get("x-codeq-read"))
                self.rows.append(row)

    def leads(self, client: httpx.Client, node: str) -> bool:
        try:
            r = client.get(f"{self.cluster.url(node)}/v1/codeq/raft/status", headers=WORKER)
        except httpx.TransportError:
            return False
        return bool(r.status_code == 200 and r.json()["groups"][0]["isLeader"])


def test_a_cut_off_leader_stops_leading_before_another_is_elected_and_never_serves_stale_reads(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, proxied=True)
    try:
        cluster.start()
        lead_with(cluster, "a")
        created = cluster.create("a", {"command": "render", "payload": {}})
        assert created.status_code == 202, created.text
        task_id = created.json()["id"]
        until(lambda: all(cluster.has_task(i, task_id) for i in ("b", "c")), 10, "replication")
        watch = Watch(cluster, "a", task_id)
        watch.thread.start()
        until(lambda: len(watch.rows) > 3, 10, "the watch running")
        assert cluster.proxy is not None
        cluster.proxy.cut()
        new = cluster.wait_leader(among=["b", "c"])
        claimed = httpx.post(f"{cluster.url(new)}/v1/codeq/tasks/claim", json={}, headers=WORKER, timeout=10)
        assert claimed.status_code == 200 and claimed.json()["id"] == task_id, claimed.text
        claimed_at = len(watch.rows)
        until(lambda: len(watch.rows) > claimed_at + 5, 10, "reads after the claim")
        watch.stop.set()
        watch.thread.join()
        rows = watch.rows
        assert rows[0]["old_leads"] and rows[0]["read"] == ("PENDING", "leader")
        both = [r for r in rows if r["new"] and r["old_leads"]]
        assert both == [], f"the cut-off leader still said it led after another was elected: {both[:3]}"
        assert all(r["read"][1] == "stale" for r in rows if r["new"]), rows
        assert [r for r in rows[claimed_at:] if r["read"] == ("PENDING", "leader")] == []
    finally:
        cluster.stop()


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "shard-processes"])
def test_transfer_leader_moves_a_shards_leadership_via_any_node_and_refuses_an_unknown_node(
    tmp_path: Path, processes: bool
) -> None:
    cluster = Cluster(tmp_path, shards=2, processes=processes)
    try:
        cluster.start()
        # Shard 1's preferred leader is b (groups spread over the nodes); a follows it.
        until(lambda: cluster.leader_of(shard=1) == "b", 30, "shard 1 led by b")
        done = transfer(cluster, "a", "c", "--shard", "1")  # a redirects to b
        assert done.returncode == 0, done.stdout + done.stderr
        # Answered once c leads. (b, the preferred leader, gets it back from c's balancer later.)
        assert json.loads(done.stdout) == {"shardIdx": 1, "leaderId": "c"}
        unknown = transfer(cluster, "c", "zz", "--shard", "1")
        assert unknown.returncode == 1 and "unknown node 'zz'" in unknown.stderr
    finally:
        cluster.stop()
