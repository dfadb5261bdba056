"""A shard process reports ready only when every process of the node can forward to every
shard: its own links up, and each other process saying the same of its own (ADR 0009).
Otherwise a probe answered by one process passed while a request landing on another failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeq.app.shard_process import ShardProcess
from codeq.config import Settings, StoreSettings
from codeq.core.errors import Unavailable
from codeq.observability.metrics import Metrics
from codeq.service.node import Node
from codeq.service.waiters import Waiters


@dataclass
class Link:
    connected: bool = True
    lost: bool = False


@dataclass
class Peer:
    """Another shard process as this one sees it: its link, and what it answers to `links`."""

    link: Link = field(default_factory=Link)
    answer: bool | Exception = False
    asked: int = 0

    async def read(self, name: str, *arguments: Any) -> Any:
        assert name == "links" and not arguments
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def process_with(tmp_path: Path, peer: Peer) -> ShardProcess:
    process = ShardProcess(Settings(store=StoreSettings(path=str(tmp_path))), Node(Waiters()), 0, Metrics())
    process.remotes[1] = peer  # type: ignore[assignment]  # only .link and .read are used
    return process


async def test_linked_here_is_not_ready_until_the_other_process_is_linked_too(tmp_path: Path) -> None:
    peer = Peer()
    process = process_with(tmp_path, peer)
    assert process.links_up()
    assert process.ready() == (False, "the process of shard 1 is not linked to every shard yet")
    await process.check_peers()
    assert peer.asked == 1
    assert process.ready() == (False, "the process of shard 1 is not linked to every shard yet")
    peer.answer = True
    await process.check_peers()
    assert process.ready() == (True, "")


async def test_a_peer_that_fails_to_answer_or_unlinks_makes_this_one_not_ready(tmp_path: Path) -> None:
    peer = Peer(answer=True)
    process = process_with(tmp_path, peer)
    await process.check_peers()
    assert process.ready() == (True, "")
    peer.answer = Unavailable("shard 1 is gone")
    await process.check_peers()
    assert process.ready()[0] is False
    peer.answer = True
    peer.link.connected = False  # not asked over a link that is down
    await process.check_peers()
    assert peer.asked == 2
    assert process.ready() == (False, "waiting for the process of shard 1")


async def test_the_links_read_says_whether_this_process_reaches_every_other(tmp_path: Path) -> None:
    peer = Peer()
    process = process_with(tmp_path, peer)
    assert await process._links_page() is True
    peer.link.lost = True
    assert await process._links_page() is False
