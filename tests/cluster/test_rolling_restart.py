"""A rolling restart under load: each node in turn gets SIGTERM and comes back. A leader hands
over before it exits, so the cluster has a leader the moment the old one is gone, and no
acknowledged write is lost. The gaps without acknowledged writes are printed (run with -s);
their size is measured by bench/raft_bench.py --rolls, not asserted here."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster.support import Cluster, until
from tests.cluster.test_raft_cluster import Writer

pytestmark = pytest.mark.timeout(120)


class TimedWriter(Writer):
    """The cluster tests' writer, noting when each acknowledgement arrived."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        self.acked_at: list[float] = []

    def send(self, client: httpx.Client, key: str) -> None:
        super().send(client, key)
        if key in self.acked:
            self.acked_at.append(time.monotonic())


def longest_gap(times: list[float], start: float, end: float) -> float:
    points = [start, *(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points))


def test_a_rolling_restart_under_load_hands_leadership_over_and_keeps_every_write(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        first = cluster.wait_leader()
        writer = TimedWriter(cluster)
        writer.thread.start()
        until(lambda: len(writer.acked) > 20, 20, "writes flowing")
        gaps: dict[str, float] = {}
        for node in [first, *(i for i in cluster.ids if i != first)]:
            led = cluster.leader_of() == node
            started = time.monotonic()
            assert cluster.nodes[node].terminate() == 0
            others = [i for i in cluster.ids if i != node]
            if led:  # handed over before it exited: no election timeout to wait out
                assert cluster.leader_of(among=others) is not None
            cluster.nodes[node].start()
            until(lambda n=node: (s := cluster.status(n)) and s["groups"][0]["hasLeader"], 20, f"{node} back")
            acked = len(writer.acked)
            until(lambda n=acked: len(writer.acked) > n + 10, 20, "writes flowing again")
            gaps[node + (" (leader)" if led else "")] = round(
                longest_gap(writer.acked_at, started, time.monotonic()), 3
            )
        writer.stop.set()
        writer.thread.join(10)
        print(f"longest gap without an acknowledged write, per restart (s): {gaps}")
        for node in cluster.ids:
            assert cluster.missing(node, set(writer.acked.values())) == set()
    finally:
        cluster.stop()
