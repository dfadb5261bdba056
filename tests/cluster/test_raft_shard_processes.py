"""Raft with a process per shard (ADR 0009, issue 16): three real nodes with two shards, each
shard's Raft group running in its own process of each node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from codeq.engine.shards import shard_of
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.cluster.support import PRODUCER, WORKER, Cluster, until
from tests.cluster.test_raft_cluster import Writer, _follower_report
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

SHARDS = 2
CODEQ = str(Path(sys.executable).parent / "codeq")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # Calmer timing than the default cluster's: a spurious election on a loaded machine would
    # move a leader that these tests expect to stay where it settled.
    env = {
        "RAFT_ELECTION_MS": "1000",
        "RAFT_LEADER_LEASE_MS": "800",
        "BACKUP_ROOT": str(tmp_path / "backups"),
    }
    cl = Cluster(tmp_path, shards=SHARDS, processes=True, env=env)
    try:
        cl.start()
        yield cl
    finally:
        cl.stop()


def shard_processes(node: ServerProcess) -> list[int]:
    assert node.proc is not None
    pid = node.proc.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def kill_whole_node(node: ServerProcess) -> None:
    """SIGKILL every process of the node: its shard processes, then the supervisor."""
    for pid in shard_processes(node):
        os.kill(pid, signal.SIGKILL)
    node.kill()


def create(cluster: Cluster, node: str, body: dict[str, object]) -> tuple[str, int]:
    """Create through `node`, following the redirect to a shard's leader; (id, hops)."""
    url, hops = f"{cluster.url(node)}/v1/codeq/tasks", 0
    with httpx.Client(headers=PRODUCER, timeout=10) as client:
        reply = client.post(url, json=body)
        while reply.status_code in (307, 503) and hops < 5:
            hops += 1
            url = reply.headers["location"] if reply.status_code == 307 else url
            reply = client.post(url, json=body)
    assert reply.status_code == 202, reply.text
    task_id: str = reply.json()["id"]
    return task_id, hops


def leaders(cluster: Cluster) -> list[str | None]:
    return [cluster.leader_of(shard) for shard in range(SHARDS)]


def run_codeq(*args: str, url: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEQ_PRODUCER_TOKEN": "dev-producer", "CODEQ_BASE_URL": url}
    return subprocess.run([CODEQ, *args], capture_output=True, text=True, timeout=120, env=env)


def test_writes_to_both_shards_succeed_through_any_node_and_a_backup_holds_them(
    cluster: Cluster, tmp_path: Path
) -> None:
    for node in cluster.nodes.values():
        assert len(shard_processes(node)) == SHARDS
    # Shard i settles on the i-th node: a and b lead a group each, c none.
    until(lambda: leaders(cluster) == ["a", "b"], 30, "leaders spread")
    created: set[str] = set()
    for node in cluster.ids:
        for n in range(8):
            # Keyed creates land on the key's shard, whichever process and node took them.
            task_id, hops = create(
                cluster, node, {"command": "render", "payload": {}, "idempotencyKey": f"{node}{n}"}
            )
            assert hops <= 1
            created.add(task_id)
            task_id, hops = create(cluster, node, {"command": "render", "payload": {}})
            # Without a key, a node leading a group keeps the create there, in whichever of
            # its processes took it (forwarded to the one leading); c sends it to a leader.
            assert hops == (1 if node == "c" else 0)
            if node != "c":
                assert shard_of(task_id, SHARDS) == cluster.ids.index(node)
            created.add(task_id)
    assert {shard_of(task_id, SHARDS) for task_id in created} == {0, 1}
    for node in cluster.ids:
        assert cluster.missing(node, created) == set()
    # Every process of a node reports every group (the kernel picks the process per request).
    for _ in range(6):
        status = cluster.status("c")
        assert status is not None
        assert [g["leaderId"] for g in status["groups"]] == ["a", "b"]
    # A backup of c (a follower of both groups) checkpoints each shard in its own process.
    backup = run_codeq("backup", str(tmp_path / "backups" / "c"), "--json", url=cluster.url("c"))
    assert backup.returncode == 0, backup.stderr
    restored = ServerProcess(tmp_path / "restored", args=["--shards", str(SHARDS)])
    done = run_codeq("restore", str(tmp_path / "backups" / "c"), "--data", str(restored.data))
    assert done.returncode == 0, done.stderr
    restored.start()
    try:
        assert cluster_missing_on(restored, created) == set()
    finally:
        restored.stop()


def cluster_missing_on(server: ServerProcess, task_ids: set[str]) -> set[str]:
    with httpx.Client(base_url=server.url, headers=PRODUCER, timeout=10) as client:
        return {i for i in task_ids if client.get(f"/v1/codeq/tasks/{i}").status_code != 200}


def test_sigkill_of_a_shard_leader_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    writer = Writer(cluster)  # idempotency keys spread its creates over both shards
    writer.thread.start()
    try:
        leader = cluster.wait_leader(shard=0)
        until(lambda: len(writer.acked) > 30, what="writes acknowledged")
        kill_whole_node(cluster.nodes[leader])
        others = [i for i in cluster.ids if i != leader]
        for shard in range(SHARDS):
            assert cluster.wait_leader(shard, among=others) != leader
        after = len(writer.acked)
        until(lambda: len(writer.acked) > after + 30, what="writes acknowledged by the survivors")
        cluster.nodes[leader].start()
    finally:
        writer.stop.set()
        writer.thread.join(10)
    with httpx.Client(headers=PRODUCER, timeout=10) as client:
        for key in writer.unknown:  # an idempotent retry settles each unknown outcome once
            writer.send(client, key)
    acked = set(writer.acked.values())
    assert {shard_of(task_id, SHARDS) for task_id in acked} == {0, 1}
    for node in cluster.ids:
        assert cluster.missing(node, acked) == set(), f"acknowledged writes missing on {node}"


def test_sigterm_of_a_node_hands_the_group_each_of_its_processes_leads_over(cluster: Cluster) -> None:
    until(lambda: leaders(cluster) == ["a", "b"], 30, "leaders spread")
    writer = Writer(cluster)
    writer.thread.start()
    try:
        for node, shard in (("a", 0), ("b", 1)):  # a leads in its process 0, b in its process 1
            until(lambda n=node, s=shard: cluster.leader_of(s) == n, 30, f"{node} leading shard {shard}")
            assert cluster.nodes[node].terminate() == 0
            others = [i for i in cluster.ids if i != node]
            # Handed over before the process exited: the others lead without an election timeout.
            assert cluster.leader_of(shard, among=others) is not None
            assert f"raft group {shard}: leadership handed to" in cluster.nodes[node].log.read_text()
            cluster.nodes[node].start()
            acked = len(writer.acked)
            until(lambda n=acked: len(writer.acked) > n + 10, 30, "writes flowing again")
    finally:
        writer.stop.set()
        writer.thread.join(10)
    with httpx.Client(headers=PRODUCER, timeout=10) as client:
        for key in writer.unknown:
            writer.send(client, key)
    for node in cluster.ids:
        assert cluster.missing(node, set(writer.acked.values())) == set()


def test_reports_on_a_node_not_leading_the_tasks_shard_name_that_shards_leader(cluster: Cluster) -> None:
    until(lambda: leaders(cluster) == ["a", "b"], 30, "leaders spread")
    task_id, _ = create(cluster, "b", {"command": "render", "payload": {}})
    assert shard_of(task_id, SHARDS) == 1  # b's create stays on the shard b leads
    claimed = httpx.post(f"{cluster.url('b')}/v1/codeq/tasks/claim", json={}, headers=WORKER, timeout=10)
    assert claimed.json()["id"] == task_id
    # a leads shard 0 only: whichever of its processes takes a report on this task, the
    # group of shard 1 refuses it there and names b, over HTTP (307) and on the stream.
    for node in ("a", "c", "a", "c"):
        heartbeat = wpb.WorkerEvent(heartbeat=wpb.Heartbeat(task_id=task_id))
        code, trailers, answers = _follower_report(cluster.worker_streams[node], heartbeat)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert trailers["codeq-leader"].endswith(cluster.worker_streams["b"])
        assert answers == ["hello_ack"]
        result = httpx.post(
            f"{cluster.url(node)}/v1/codeq/tasks/{task_id}/result",
            json={"status": "COMPLETED", "result": {}},
            headers=WORKER,
            timeout=10,
        )
        assert result.status_code == 307, result.text
        assert result.headers["location"].startswith(cluster.url("b"))
