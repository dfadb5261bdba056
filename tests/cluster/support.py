"""Three real `codeq serve` processes in one Raft cluster on 127.0.0.1, and a TCP proxy the
test can cut to isolate a node."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import ServerProcess

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}
FAST = {
    "RAFT_HEARTBEAT_MS": "50",
    "RAFT_ELECTION_MS": "300",
    "RAFT_LEADER_LEASE_MS": "250",
    "RAFT_APPLY_TIMEOUT_SECONDS": "3",
}


_LOW = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
_RNG = random.Random()
_HANDED_OUT: set[int] = set()


def quiet_port(span: int = 1) -> int:
    """A free port (with the next span-1 free too) below the kernel's ephemeral range: the
    cluster's own outgoing connections take ephemeral ports, and must not take these first."""
    while True:
        base = _RNG.randrange(max(10_000, _LOW - 12_000), _LOW - span)
        ports = set(range(base, base + span))
        if not ports & _HANDED_OUT and all(_free(p) for p in ports):
            _HANDED_OUT.update(ports)
            return base


def until(probe: Callable[[], Any], deadline_s: float = 20.0, what: str = "condition") -> Any:
    """Poll real processes for a condition, with a deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached in {deadline_s} s")


class Proxy:
    """Forwards TCP from `port` to `target`; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: int, port: int) -> None:
        self.target = target
        self.port = port
        self.open = True
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=1)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            src.settimeout(None)
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        self.open = False
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def heal(self) -> None:
        self.open = True

    def close(self) -> None:
        self._stop = True
        self.cut()
        self._server.close()


class Cluster:
    """Nodes a, b, c. With `proxied`, node a is reached only through a Proxy: its advertised
    raft address is the proxy's, and it is the smallest, so PySyncObj (where the larger
    address dials) makes both peers dial a through it."""

    def __init__(
        self,
        root: Path,
        *,
        shards: int = 1,
        proxied: bool = False,
        env: dict[str, str] | None = None,
        processes: bool | None = None,  # a process per shard (ADR 0009); None: the default
    ):
        self.root = root
        self.shards = shards
        self.ids = ["a", "b", "c"]
        self.bind = {i: quiet_port(shards) for i in self.ids}
        self.proxy: Proxy | None = None
        advertised = dict(self.bind)
        if proxied:
            # The proxy's port must sort first (as "127.0.0.1:<port>" strings) among the peers.
            pool = sorted({quiet_port() for _ in range(4)}, key=lambda p: f"127.0.0.1:{p}")
            self.bind = {"a": pool[3], "b": pool[1], "c": pool[2]}
            advertised = dict(self.bind)
            self.proxy = Proxy(self.bind["a"], pool[0])
            advertised["a"] = self.proxy.port
        self.nodes: dict[str, ServerProcess] = {}
        for i in self.ids:
            self.nodes[i] = ServerProcess(root / i, env={})
            self.nodes[i].port = quiet_port()
        http = ",".join(f"{i}={self.nodes[i].url}" for i in self.ids)
        self.producer_streams = {i: f"127.0.0.1:{quiet_port()}" for i in self.ids}
        self.worker_streams = {i: f"127.0.0.1:{quiet_port()}" for i in self.ids}
        producers = ",".join(f"{i}=grpc://{a}" for i, a in self.producer_streams.items())
        workers = ",".join(f"{i}=grpc://{a}" for i, a in self.worker_streams.items())
        peers = ",".join(f"{i}=127.0.0.1:{advertised[i]}" for i in self.ids)
        store: dict[str, Any] = {"numShards": shards}
        if processes is not None:
            store["shardProcesses"] = processes
        for i in self.ids:
            node = self.nodes[i]
            node.env = {
                **FAST,
                "RAFT_ENABLED": "true",
                "RAFT_SELF_ID": i,
                "RAFT_BIND_ADDR": f"127.0.0.1:{self.bind[i]}",
                "RAFT_PEERS": peers,
                "RAFT_PEER_HTTP_ADDRS": http,
                "RAFT_SECRET": "cluster-test-secret-of-at-least-32-chars",
                "PERSISTENCE_CONFIG": json.dumps(store),
                "PRODUCER_STREAM_ADDR": self.producer_streams[i],
                "WORKER_STREAM_ADDR": self.worker_streams[i],
                "RAFT_PEER_PRODUCER_STREAM_ADDRS": producers,
                "RAFT_PEER_WORKER_STREAM_ADDRS": workers,
                **(env or {}),
            }
        if proxied:  # node a's peers entry is the proxy in front of its bindAddr
            self.nodes["a"].env["RAFT_BIND_BEHIND_PROXY"] = "true"

    def spawn(self, node: str) -> ServerProcess:
        """A new node (not started) that joins the running cluster (raft.join): its own id and
        addresses, and how to reach every node this cluster has had."""
        self.ids.append(node)
        self.bind[node] = quiet_port(self.shards)
        self.nodes[node] = process = ServerProcess(self.root / node, env={})
        process.port = quiet_port()
        self.producer_streams[node] = f"127.0.0.1:{quiet_port()}"
        self.worker_streams[node] = f"127.0.0.1:{quiet_port()}"
        template = self.nodes[self.ids[0]].env
        process.env = {
            **template,
            "RAFT_SELF_ID": node,
            "RAFT_BIND_ADDR": f"127.0.0.1:{self.bind[node]}",
            "RAFT_PEERS": ",".join(f"{i}=127.0.0.1:{self.bind[i]}" for i in self.ids),
            "RAFT_PEER_HTTP_ADDRS": ",".join(f"{i}={self.nodes[i].url}" for i in self.ids),
            "RAFT_JOIN": "true",
            "PRODUCER_STREAM_ADDR": self.producer_streams[node],
            "WORKER_STREAM_ADDR": self.worker_streams[node],
        }
        for kind, streams in (("PRODUCER", self.producer_streams), ("WORKER", self.worker_streams)):
            process.env[f"RAFT_PEER_{kind}_STREAM_ADDRS"] = ",".join(
                f"{i}=grpc://{a}" for i, a in streams.items()
            )
        return process

    def add_args(self, node: str) -> list[str]:
        """`codeq cluster add-node` arguments for a node made by `spawn`."""
        return [
            node,
            "--raft", f"127.0.0.1:{self.bind[node]}",
            "--http", self.nodes[node].url,
            "--grpc-producer", f"grpc://{self.producer_streams[node]}",
            "--grpc-worker", f"grpc://{self.worker_streams[node]}",
        ]  # fmt: skip

    def start(self, *ids: str) -> None:
        """Launch the nodes together, then wait for each: a node is ready only once its
        shards have a leader, which takes a majority of them running."""
        for i in ids or self.ids:
            self.nodes[i].launch()
        for i in ids or self.ids:
            self.nodes[i].wait_ready()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        if self.proxy is not None:
            self.proxy.close()

    def url(self, i: str) -> str:
        return self.nodes[i].url

    def status(self, i: str) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{self.url(i)}/v1/codeq/raft/status", headers=WORKER, timeout=2)
        except httpx.TransportError:
            return None
        return r.json() if r.status_code == 200 else None

    def leader_of(self, shard: int = 0, among: list[str] | None = None) -> str | None:
        """The node that says it leads `shard`, if the others that answer agree."""
        for i in among or self.ids:
            s = self.status(i)
            if s and s["groups"][shard]["isLeader"]:
                return i
        return None

    def wait_leader(self, shard: int = 0, among: list[str] | None = None, deadline_s: float = 20.0) -> str:
        leader: str = until(lambda: self.leader_of(shard, among), deadline_s, f"a leader of shard {shard}")
        return leader

    def create(self, i: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.url(i)}/v1/codeq/tasks", json=body, headers={**PRODUCER, **(headers or {})}, timeout=10
        )

    def missing(self, i: str, task_ids: set[str], deadline_s: float = 60.0) -> set[str]:
        """The tasks node i still lacks once replication had `deadline_s` to deliver them."""
        missing = set(task_ids)
        deadline = time.monotonic() + deadline_s
        with httpx.Client(base_url=self.url(i), headers=PRODUCER, timeout=5) as client:
            while missing and time.monotonic() < deadline:
                for task_id in list(missing):
                    try:
                        if client.get(f"/v1/codeq/tasks/{task_id}").status_code == 200:
                            missing.discard(task_id)
                    except httpx.TransportError:
                        break
                if missing:
                    time.sleep(0.2)
        return missing

    def has_task(self, i: str, task_id: str) -> bool:
        try:
            r = httpx.get(f"{self.url(i)}/v1/codeq/tasks/{task_id}", headers=PRODUCER, timeout=5)
        except httpx.TransportError:
            return False
        return r.status_code == 200


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
