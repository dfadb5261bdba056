#!/usr/bin/env python3
"""Raft cluster benchmarks: `codeq bench` against a local three-node cluster, and failover time.

throughput  for each --modes and --shards: start a fresh cluster (bench ports, a temp dir),
            wait for the leaders (spread over the nodes with several shards), run
            `codeq bench --mode <mode>` against a leader for --duration seconds, report
            acknowledged full cycles/s.
            Each run also reports the elections (term changes summed over the nodes' views)
            during the load: with no fault injected, any is a false alarm.
failover    --kills times: SIGKILL the leader of shard 0 while one writer creates tasks
            against whoever leads (following 307s); the failover time is kill -> the first
            acknowledged create after it. The killed node is restarted and waited for.
rolling     --rolls times: SIGTERM each node in turn (the leader hands over before it stops),
            restart it and wait for it to rejoin, while the writer runs; the gap of a restart
            is the longest time without an acknowledged create from SIGTERM to rejoin.

.venv/bin/python bench/raft_bench.py [--modes grpc-batch,http] [--shards 1,4] [--kills 10] [--rolls 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from codeq.cli.run_cluster import IDS, LocalCluster

PRODUCER = {"Authorization": "Bearer dev-producer"}


def bench_cluster(data: str, shards: int) -> LocalCluster:
    # Ports away from `make run-cluster`'s, so both can run.
    return LocalCluster(
        data=data, shards=shards, http_base=18081, raft_base=17000, producer_base=19191, worker_base=19291
    )


def throughput(mode: str, shards: int, duration: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="codeq-raft-bench-") as data:
        cluster = bench_cluster(data, shards)
        for node in IDS:
            cluster.start(node)
        try:
            cluster.wait_leaders()
            leaders = cluster.wait_spread(30)  # groups' leaders settled where they are handed
            node = leaders[0]
            elections_before = term_changes(cluster)
            command = [sys.executable, "-m", "codeq.cli.main", "bench", "--mode", mode, "--json"]
            command += ["--url", cluster.http(node), "--duration", str(duration)]
            command += ["--producer-addr", cluster.producer(node), "--worker-addr", cluster.worker(node)]
            out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=False)
            result: dict[str, object] = {}
            try:
                result = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                result["error"] = (out.stdout + out.stderr)[-2000:]
            elections = term_changes(cluster) - elections_before
            extra = {"mode": mode, "shards": shards, "leaders": leaders, "load_avg_1m": os.getloadavg()[0]}
            return result | extra | {"elections_during_load": elections}
        finally:
            cluster.stop()


class Writer:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.acks: list[float] = []  # when each acknowledged create was sent
        self.answered_at: dict[float, float] = {}  # sent -> answered
        self.stop = threading.Event()
        self.target = IDS[0]

    def run(self) -> None:
        with httpx.Client(headers=PRODUCER, timeout=5) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(
                        f"{self.cluster.http(self.target)}/v1/codeq/tasks",
                        json={"command": "f", "payload": {}},
                    )
                except httpx.TransportError:
                    self.target = IDS[(IDS.index(self.target) + 1) % len(IDS)]
                    time.sleep(0.005)
                    continue
                if r.status_code == 307:
                    leader = r.json()["leader"]
                    self.target = next(i for i in IDS if self.cluster.http(i) == leader)
                elif r.status_code == 202:
                    self.answered_at[sent] = time.monotonic()
                    self.acks.append(sent)
                else:
                    time.sleep(0.005)


def failover(kills: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="codeq-raft-failover-") as data:
        cluster = bench_cluster(data, 1)
        for node in IDS:
            cluster.start(node)
        writer = Writer(cluster)
        thread = threading.Thread(target=writer.run, daemon=True)
        times: list[float] = []
        try:
            cluster.wait_leaders()
            thread.start()
            for _ in range(kills):
                time.sleep(2)  # steady writes first
                leader = cluster.wait_leaders()[0]
                killed_at = time.monotonic()
                cluster.kill(leader)
                deadline = killed_at + 30
                while time.monotonic() < deadline and not any(t > killed_at for t in writer.acks[-50:]):
                    time.sleep(0.01)
                # A request sent after the kill was acknowledged: its answer time is the failover.
                first = next((t for t in writer.acks[-200:] if t > killed_at), None)
                answered = writer.answered_at.get(first) if first is not None else None
                times.append((answered - killed_at) if answered is not None else float("inf"))
                cluster.start(leader)
                wait_caught_up(cluster, leader)
        finally:
            writer.stop.set()
            thread.join(10)
            cluster.stop()
        return {
            "kills": kills,
            "seconds": [round(t, 3) for t in times],
            "median": round(statistics.median(times), 3),
            "max": round(max(times), 3),
        }


def term_changes(cluster: LocalCluster) -> int:
    """Terms begun since start, summed over every node's view of every group."""
    total = 0
    for node in IDS:
        status = cluster.status(node) or {}
        total += sum(int(g.get("termChanges", 0)) for g in status.get("groups", []))  # type: ignore[attr-defined]
    return total


def rolling(rolls: int) -> dict[str, object]:
    """Restart every node in turn, gracefully, under a steady writer; per restart, the longest
    stretch without an acknowledged write between the SIGTERM and the node's return."""
    with tempfile.TemporaryDirectory(prefix="codeq-raft-rolling-") as data:
        cluster = bench_cluster(data, 1)
        for node in IDS:
            cluster.start(node)
        writer = Writer(cluster)
        thread = threading.Thread(target=writer.run, daemon=True)
        gaps: list[dict[str, object]] = []
        try:
            cluster.wait_leaders()
            thread.start()
            for _ in range(rolls):
                for node in IDS:
                    time.sleep(1)  # steady writes first
                    led = cluster.wait_leaders()[0] == node
                    stopped_at = time.monotonic()
                    proc = cluster.procs.pop(node)
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
                    cluster.start(node)
                    wait_caught_up(cluster, node)
                    time.sleep(0.5)
                    gap = longest_gap(writer, stopped_at, time.monotonic())
                    gaps.append({"node": node, "was_leader": led, "gap_s": round(gap, 3)})
        finally:
            writer.stop.set()
            thread.join(10)
            cluster.stop()
        leader_gaps = [float(g["gap_s"]) for g in gaps if g["was_leader"]]  # type: ignore[arg-type]
        return {
            "restarts": gaps,
            "max_gap_s": max(float(g["gap_s"]) for g in gaps),  # type: ignore[arg-type]
            "max_gap_leader_restart_s": max(leader_gaps) if leader_gaps else None,
        }


def longest_gap(writer: Writer, start: float, end: float) -> float:
    answered = sorted(t for t in writer.answered_at.values() if start <= t <= end)
    points = [start, *answered, end]
    return max(b - a for a, b in itertools.pairwise(points))


def wait_caught_up(cluster: LocalCluster, node: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = cluster.status(node)
        if status and all(g["hasLeader"] for g in status["groups"]):  # type: ignore[attr-defined]
            return
        time.sleep(0.1)
    raise TimeoutError(f"node {node} did not rejoin")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="grpc-batch,http")
    parser.add_argument("--shards", default="1,4")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rolls", type=int, default=0)
    parser.add_argument("--out", default="bench/raft-results-latest.json")
    args = parser.parse_args()
    results: dict[str, object] = {"throughput": []}
    for shards in (int(s) for s in args.shards.split(",") if s):
        for mode in (m for m in args.modes.split(",") if m):
            row = throughput(mode, shards, args.duration)
            print(json.dumps(row), flush=True)
            results["throughput"].append(row)  # type: ignore[attr-defined]
    if args.kills:
        results["failover"] = failover(args.kills)
        print(json.dumps(results["failover"]), flush=True)
    if args.rolls:
        results["rolling"] = rolling(args.rolls)
        print(json.dumps(results["rolling"]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
