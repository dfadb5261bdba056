"""A rolling restart of a three-node Raft cluster under write load, as docs/upgrades.md says to
do it: followers first, the leader last, each node back and caught up before the next stops."""

from __future__ import annotations

import httpx
import pytest

from tests.cluster.support import PRODUCER, Cluster, until
from tests.cluster.test_raft_cluster import Writer

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]


def caught_up(cluster: Cluster, node: str, task_id: str) -> bool:
    """The documented check: the node knows a leader and serves a write made after it came back."""
    status = cluster.status(node)
    return bool(status and status["groups"][0]["hasLeader"] and cluster.has_task(node, task_id))


def restart(cluster: Cluster, node: str, writer: Writer) -> None:
    before = len(writer.acked)
    until(lambda: len(writer.acked) > before + 10, what="writes acknowledged before the restart")
    assert cluster.nodes[node].terminate() == 0  # SIGTERM: a graceful stop, as an upgrade does
    cluster.nodes[node].start()
    during = len(writer.acked)
    until(lambda: len(writer.acked) > during, what="a write acknowledged after the restart")
    newest = list(writer.acked.values())[-1]
    until(lambda: caught_up(cluster, node, newest), deadline_s=30, what=f"{node} caught up")


def test_a_rolling_restart_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    order = [*(i for i in cluster.ids if i != leader), leader]
    writer = Writer(cluster)
    writer.thread.start()
    try:
        for node in order:
            restart(cluster, node, writer)
    finally:
        writer.stop.set()
        writer.thread.join(10)
    # Writes whose answer was lost while a node stopped are retried with their idempotency key,
    # as a client does; each settles exactly once.
    with httpx.Client(headers=PRODUCER, timeout=10) as client:
        writer.target = cluster.wait_leader()
        for key in writer.unknown:
            writer.send(client, key)
    acked = set(writer.acked.values())
    assert len(acked) == len(writer.acked) > 30
    for i in cluster.ids:
        assert cluster.missing(i, acked) == set(), f"acknowledged writes missing on {i}"
