"""`codeq serve --shards 2`: the SDK's streams end up spread evenly over the shard processes,
however the kernel hashed their first connections (ADR 0009)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeq.cli.bench_sockets import connections_by_process
from codeq.client import TaskSpec
from codeq.client._grpc import GrpcTransport
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.process

STREAMS = 8  # of each kind, as `codeq bench --clients 8` opens


class Node:
    def __init__(self, data: Path) -> None:
        self.ports = {"producer": free_port(), "worker": free_port()}
        args = ["--shards", "2"] + [
            f"--{kind}-stream-addr=127.0.0.1:{port}" for kind, port in self.ports.items()
        ]
        self.server = ServerProcess(data, args=args)

    def url(self, kind: str) -> str:
        return f"grpc://127.0.0.1:{self.ports[kind]}"

    def processes(self) -> dict[str, int]:
        assert self.server.proc is not None
        pid = self.server.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 2
        return {f"process{n}": int(child) for n, child in enumerate(children)}

    def streams_by_process(self) -> dict[str, list[int]]:
        """Per kind, the connections each shard process holds, once the refused ones are gone."""
        pids = self.processes()
        deadline = time.monotonic() + 20
        while True:
            found = connections_by_process(pids, self.ports)
            spread = {kind: [found.get(name, {}).get(kind, 0) for name in pids] for kind in self.ports}
            if all(sum(counts) == STREAMS for counts in spread.values()) or time.monotonic() > deadline:
                return spread
            time.sleep(0.05)  # a refused connection is still closing


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    found = Node(tmp_path / "data")
    found.server.start()
    yield found
    found.server.stop()


async def open_streams(node: Node) -> list[GrpcTransport]:
    producers = [GrpcTransport(node.url("producer"), "dev-producer") for _ in range(STREAMS)]
    workers = [GrpcTransport(node.url("worker"), "dev-worker") for _ in range(STREAMS)]
    # All at once, as a load's clients start: each call opens its transport's stream.
    await asyncio.gather(
        *(p.create(TaskSpec(command="spread", payload=n)) for n, p in enumerate(producers)),
        *(w.claim_many(["spread"], 60, 0, 1) for w in workers),
    )
    return producers + workers


def test_the_streams_of_each_kind_are_spread_evenly_over_the_shard_processes(node: Node) -> None:
    async def run() -> dict[str, list[int]]:
        transports = await open_streams(node)
        try:
            return await asyncio.to_thread(node.streams_by_process)
        finally:
            for transport in transports:
                await transport.aclose()

    spread = asyncio.run(run())
    for counts in spread.values():
        assert sum(counts) == STREAMS, spread
        assert max(counts) - min(counts) <= 1, spread
    page = httpx.get(f"{node.server.url}/metrics").text
    for kind in ("producer", "worker"):
        assert re.search(rf'codeq_grpc_stream_rebalanced_total{{[^}}]*kind="{kind}"', page), page
