"""Readiness tells the truth (issue 17 item 4): a node whose shards have no live leader, or
that reaches no majority, answers /readyz 503, and /raft/status stops naming a dead leader."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cluster.support import Cluster, until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]


def ready(cluster: Cluster, node: str) -> httpx.Response:
    return httpx.get(f"{cluster.url(node)}/readyz", timeout=5)


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "shard-processes"])
def test_a_survivor_of_a_dead_majority_is_unready_and_names_no_dead_leader(
    tmp_path: Path, processes: bool
) -> None:
    cluster = Cluster(tmp_path, shards=2, processes=processes)
    try:
        cluster.start()
        leader = cluster.wait_leader(shard=0)
        survivor = next(i for i in cluster.ids if i != leader)
        until(lambda: all(ready(cluster, i).status_code == 200 for i in cluster.ids), what="all ready")
        for node in cluster.ids:
            if node != survivor:
                cluster.nodes[node].kill()

        def unready() -> httpx.Response | None:
            response = ready(cluster, survivor)
            return response if response.status_code == 503 else None

        answer = until(unready, deadline_s=15, what="the survivor turning unready")
        assert answer.json()["status"] == "not ready"

        def names_no_leader() -> bool:
            status = cluster.status(survivor)
            return status is not None and all(not g["hasLeader"] for g in status["groups"])

        until(names_no_leader, deadline_s=15, what="the status dropping the dead leader")
        status = cluster.status(survivor)
        assert status is not None
        assert all(g["leaderId"] in ("", None) and not g["isLeader"] for g in status["groups"])
        write = cluster.create(survivor, {"command": "render", "payload": {}})
        assert write.status_code == 503  # what readiness now agrees with
        assert ready(cluster, survivor).status_code == 503  # and it stays so
    finally:
        cluster.stop()
