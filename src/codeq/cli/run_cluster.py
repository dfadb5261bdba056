"""A local three-node Raft cluster on loopback for development (`make run-cluster`).

Ports (node a / b / c): HTTP 8081 / 8082 / 8083, producer streams 9191 / 9192 / 9193,
worker streams 9291 / 9292 / 9293, Raft 7000 / 7100 / 7200 (shard i's group on base + i).
Data under ./data-cluster/<node>. Uses the public dev tokens: never for anything but local work.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

IDS = ("a", "b", "c")
SECRET = "local-dev-cluster-secret-loopback-only"  # loopback only; a real cluster sets its own RAFT_SECRET


@dataclass
class LocalCluster:
    data: str = "./data-cluster"
    shards: int = 1
    http_base: int = 8081
    raft_base: int = 7000
    producer_base: int = 9191
    worker_base: int = 9291
    fsync: bool = True
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def http(self, node: str) -> str:
        return f"http://127.0.0.1:{self.http_base + IDS.index(node)}"

    def producer(self, node: str) -> str:
        return f"127.0.0.1:{self.producer_base + IDS.index(node)}"

    def worker(self, node: str) -> str:
        return f"127.0.0.1:{self.worker_base + IDS.index(node)}"

    def env(self, node: str) -> dict[str, str]:
        raft = {i: f"127.0.0.1:{self.raft_base + 100 * IDS.index(i)}" for i in IDS}
        persistence = {
            "path": os.path.join(self.data, node),
            "numShards": self.shards,
            "fsyncOnCommit": self.fsync,
        }
        return {
            **os.environ,
            "CODEQ_CONFIG_PATH": "",
            "RAFT_ENABLED": "true",
            "RAFT_SELF_ID": node,
            "RAFT_BIND_ADDR": raft[node],
            "RAFT_PEERS": ",".join(f"{i}={a}" for i, a in raft.items()),
            "RAFT_PEER_HTTP_ADDRS": ",".join(f"{i}={self.http(i)}" for i in IDS),
            "RAFT_PEER_PRODUCER_STREAM_ADDRS": ",".join(f"{i}=grpc://{self.producer(i)}" for i in IDS),
            "RAFT_PEER_WORKER_STREAM_ADDRS": ",".join(f"{i}=grpc://{self.worker(i)}" for i in IDS),
            "RAFT_SECRET": SECRET,
            "PERSISTENCE_CONFIG": json.dumps(persistence),
            "PRODUCER_STREAM_ADDR": self.producer(node),
            "WORKER_STREAM_ADDR": self.worker(node),
        }

    def start(self, node: str) -> None:
        port = str(self.http_base + IDS.index(node))
        command = [
            sys.executable,
            "-m",
            "codeq.cli.main",
            "serve",
            "--dev",
            "--host",
            "127.0.0.1",
            "--port",
            port,
        ]
        os.makedirs(self.data, exist_ok=True)
        log = open(os.path.join(self.data, f"{node}.log"), "ab")  # noqa: SIM115 - the child keeps it
        self.procs[node] = subprocess.Popen(command, env=self.env(node), stdout=log, stderr=subprocess.STDOUT)

    def status(self, node: str) -> dict[str, object] | None:
        request = urllib.request.Request(
            f"{self.http(node)}/v1/codeq/raft/status", headers={"Authorization": "Bearer dev-worker"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                status: dict[str, object] = json.loads(reply.read())
                return status
        except OSError:
            return None

    def leaders(self) -> list[str | None]:
        """The leader of each shard group, per the nodes' own views (None: none yet)."""
        found: list[str | None] = [None] * self.shards
        for node in IDS:
            status = self.status(node)
            for group in status.get("groups", []) if status else []:  # type: ignore[attr-defined]
                if group["isLeader"]:
                    found[group["shardIdx"]] = node
        return found

    def wait_leaders(self, deadline_s: float = 30.0) -> list[str]:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            leaders = self.leaders()
            if all(leaders):
                return [str(leader) for leader in leaders]
            time.sleep(0.1)
        raise TimeoutError("no leader elected")

    def wait_spread(self, deadline_s: float = 15.0) -> list[str]:
        """With several shards, wait (a while) for each group's leader to be handed over to
        its preferred node (shard i -> i-th node), then return the leaders as they are."""
        preferred = [IDS[shard % len(IDS)] for shard in range(self.shards)]
        deadline = time.monotonic() + deadline_s
        while self.shards > 1 and self.leaders() != preferred and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.wait_leaders()

    def kill(self, node: str) -> None:
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", default="./data-cluster")
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    cluster = LocalCluster(data=args.data, shards=args.shards)
    for node in IDS:
        cluster.start(node)
    try:
        cluster.wait_leaders()
        leaders = cluster.wait_spread()
        for node in IDS:
            print(
                f"node {node}: {cluster.http(node)}  producer grpc://{cluster.producer(node)}  "
                f"worker grpc://{cluster.worker(node)}"
            )
        for shard, leader in enumerate(leaders):
            print(f"shard {shard}: leader {leader} ({cluster.http(leader)})")
        print("Ctrl-C stops the cluster; logs in", args.data, flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
