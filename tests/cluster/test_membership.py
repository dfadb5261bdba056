"""Membership changes with real processes: `codeq cluster add-node` / `remove-node` through
every shard group's log, under load, with no acknowledged write lost (issue 18 item 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from codeq.client import Producer
from tests.cluster.support import PRODUCER, Cluster, until
from tests.cluster.test_raft_cluster import Writer

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def cluster_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEQ_PRODUCER_TOKEN": "dev-producer"}
    command = [sys.executable, "-m", "codeq.cli.main", "cluster", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=90, stdin=subprocess.DEVNULL
    )


def voters(cluster: Cluster, node: str, shard: int = 0) -> list[str]:
    status = cluster.status(node)
    return [] if status is None else sorted(n["id"] for n in status["groups"][shard]["nodes"])


def writes_flow(writer: Writer, more: int = 10) -> None:
    acked = len(writer.acked)
    until(lambda: len(writer.acked) > acked + more, 30, "writes flowing")


def test_a_dead_follower_is_replaced_under_load_and_the_new_node_holds_every_acknowledged_write(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, shards=2)
    try:
        cluster.start()
        leader = cluster.wait_leader()
        writer = Writer(cluster)
        writer.target = leader
        writer.thread.start()
        writes_flow(writer)
        dead = next(i for i in ("a", "b", "c") if i != leader and cluster.leader_of(1) != i)
        cluster.nodes[dead].kill()
        writes_flow(writer)
        # Remove first (three voters with one dead -> two, both alive), then add. Shard 0's
        # group alone first, through the API: the command then completes what is left.
        body = {"op": "remove", "id": dead, "shard": 0, "force": True}
        alone = httpx.post(
            f"{cluster.url(leader)}/v1/codeq/admin/raft/members", json=body, headers=PRODUCER, timeout=30
        )
        assert alone.status_code == 200 and alone.json()["voters"] == sorted({"a", "b", "c"} - {dead})
        removed = cluster_cli("remove-node", dead, "--force", "--url", cluster.url(leader))
        assert removed.returncode == 0, removed.stderr
        assert "shard 0: " + dead + " is not a voter: nothing to do" in removed.stdout
        assert "shard 1: remove" in removed.stdout and "warning" in removed.stderr
        again = cluster_cli("remove-node", dead, "--url", cluster.url(leader))
        assert again.returncode == 1 and "not a voter of any shard" in again.stderr
        writes_flow(writer)
        fresh = cluster.spawn("d")
        fresh.launch()
        added = cluster_cli("add-node", *cluster.add_args("d"), "--url", cluster.url(leader))
        assert added.returncode == 0, added.stderr
        fresh.wait_ready(30)
        writes_flow(writer)
        writer.stop.set()
        writer.thread.join(10)
        acked = set(writer.acked.values())
        assert len(acked) > 40
        assert cluster.missing("d", acked) == set()
        for shard in (0, 1):
            assert voters(cluster, leader, shard) == sorted({"a", "b", "c", "d"} - {dead})
            assert voters(cluster, "d", shard) == voters(cluster, leader, shard)
    finally:
        cluster.stop()


def test_a_fourth_and_fifth_node_join_then_two_leave_including_the_leader(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        first = cluster.wait_leader()
        writer = Writer(cluster)
        writer.target = first
        writer.thread.start()
        for node in ("d", "e"):
            cluster.spawn(node).launch()
            added = cluster_cli("add-node", *cluster.add_args(node), "--force", "--url", cluster.url("b"))
            assert added.returncode == 0, added.stderr
            cluster.nodes[node].wait_ready(30)
            writes_flow(writer)
        assert voters(cluster, first) == ["a", "b", "c", "d", "e"]
        # The new node as a follower redirects to the leader's HTTP address, and the leader
        # lists it with its own.
        r = httpx.post(
            f"{cluster.url('d')}/v1/codeq/tasks", json={"command": "render", "payload": {}}, headers=PRODUCER
        )
        assert r.status_code == 307 and r.json()["leader"] == cluster.url(first)
        listed = {n["id"]: n["httpAddr"] for n in cluster.status(first)["groups"][0]["nodes"]}  # type: ignore[index]
        assert listed["d"] == cluster.url("d")
        # The leader leaves: it hands over, then the new leader removes it.
        gone = cluster_cli("remove-node", first, "--force", "--url", cluster.url(first))
        assert gone.returncode == 0, gone.stderr
        rest = [i for i in ("a", "b", "c", "d", "e") if i != first]
        second = cluster.wait_leader(among=rest)
        writes_flow(writer)
        other = next(i for i in rest if i not in (second, "d"))
        gone = cluster_cli("remove-node", other, "--url", cluster.url(second))
        assert gone.returncode == 0, gone.stderr
        writes_flow(writer)
        left = sorted(set(rest) - {other})
        assert voters(cluster, second) == left
        writer.stop.set()
        writer.thread.join(10)
        for node in left:
            assert cluster.missing(node, set(writer.acked.values())) == set()
    finally:
        cluster.stop()


def test_an_old_node_redirects_to_a_new_leader_at_its_learned_addresses_across_a_restart(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        cluster.wait_leader()
        cluster.spawn("d").launch()
        assert (
            cluster_cli("add-node", *cluster.add_args("d"), "--force", "--url", cluster.url("a")).returncode
            == 0
        )
        cluster.nodes["d"].wait_ready(30)
        moved = cluster_cli("transfer-leader", "--to", "d", "--url", cluster.url("a"))
        assert moved.returncode == 0, moved.stderr
        # b's static configuration never named d: what it knows came with the membership change,
        # and it is on disk.
        assert cluster.nodes["b"].terminate() == 0
        cluster.nodes["b"].start()
        until(lambda: (s := cluster.status("b")) and s["groups"][0]["leaderId"] == "d", 20, "b follows d")
        r = httpx.post(
            f"{cluster.url('b')}/v1/codeq/tasks", json={"command": "render", "payload": {}}, headers=PRODUCER
        )
        assert r.status_code == 307 and r.json()["leader"] == cluster.url("d")
        with Producer(f"grpc://{cluster.producer_streams['b']}", "dev-producer") as producer:
            task = producer.create("render", {"n": 1})
        assert cluster.has_task("d", task.id)
    finally:
        cluster.stop()


def test_refusals_an_even_count_without_force_and_removing_too_many(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    followers = [i for i in cluster.ids if i != leader]
    cluster.spawn("d").launch()
    even = cluster_cli("add-node", *cluster.add_args("d"), "--url", cluster.url(leader))
    assert even.returncode == 1 and "4 voters" in even.stderr and "even" in even.stderr
    assert voters(cluster, leader) == ["a", "b", "c"]
    cluster.nodes[followers[0]].kill()
    # Without followers[1], two voters would remain, one of them dead: no majority.
    too_many = cluster_cli("remove-node", followers[1], "--force", "--url", cluster.url(leader))
    assert too_many.returncode == 1 and "majority" in too_many.stderr
    unknown = cluster_cli("remove-node", "zz", "--url", cluster.url(leader))
    assert unknown.returncode == 1 and "not a voter" in unknown.stderr
    assert voters(cluster, leader) == ["a", "b", "c"]


def test_with_a_process_per_shard_a_node_joins_and_leaves_every_shard_group(tmp_path: Path) -> None:
    """Each shard's group runs in its own process (ADR 0009): whichever process the command
    reaches, the change is made in the process that runs the group, for both shards."""
    cluster = Cluster(tmp_path, shards=2, processes=True)
    try:
        cluster.start()
        leaders = [cluster.wait_leader(shard) for shard in (0, 1)]
        cluster.spawn("d").launch()
        added = cluster_cli("add-node", *cluster.add_args("d"), "--force", "--url", cluster.url("a"))
        assert added.returncode == 0, added.stderr
        cluster.nodes["d"].wait_ready(30)
        for shard in (0, 1):
            assert voters(cluster, leaders[shard], shard) == ["a", "b", "c", "d"]
        created = cluster.create("d", {"command": "render", "payload": {}})  # followed if d does not lead
        assert created.status_code in (202, 307), created.text
        gone = cluster_cli("remove-node", "d", "--url", cluster.url("b"))
        assert gone.returncode == 0, gone.stderr
        for shard in (0, 1):
            until(lambda s=shard: voters(cluster, cluster.wait_leader(s), s) == ["a", "b", "c"], 30, "d gone")
    finally:
        cluster.stop()
