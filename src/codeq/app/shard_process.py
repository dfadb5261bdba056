"""This process's part of a node that runs a process per shard (ADR 0009): it serves its own
shard to the other shard processes, holds a handle on each of theirs, and merges their
metrics into the page it serves."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from codeq.app.lifecycle import Lifecycle
from codeq.app.shard_raft import (
    REFRESH_SECONDS,
    GroupSnapshot,
    PeerGroups,
    RaftRemoteShard,
    own_group_reads,
    snapshot_of,
)
from codeq.app.shards import Shards
from codeq.cluster.metrics_merge import merge_pages
from codeq.cluster.remote import PeerLink, RemoteShard
from codeq.cluster.server import ANNOUNCE_SECONDS, ShardServer
from codeq.cluster.stream_table import BEAT_SECONDS, StreamBalance, StreamTable, table_path
from codeq.config import Settings
from codeq.config.keys import SHARD_PROCESS_ENV
from codeq.observability.metrics import Metrics
from codeq.service.background import Runner
from codeq.service.membership import MembershipService
from codeq.service.node import Node, Shard, ShardHandle
from codeq.service.shard_reads import READS
from codeq.transport.grpc.server import StreamServers

log = logging.getLogger("codeq.app")
PROCESS_ENV = SHARD_PROCESS_ENV  # set by the supervisor: the shard this process owns
LINKS_SECONDS = 0.25  # how often each process asks the others whether their links are all up
PEER_PAGE_SECONDS = 2.0  # how long a scrape waits for another shard process's metrics page


def socket_path(settings: Settings, number: int) -> str:
    """Where shard `number`'s process listens for its peers: below the data directory,
    which only the node's user can enter."""
    return os.path.join(os.path.abspath(settings.store.path), "procs", f"shard{number}.sock")


class ShardProcess:
    """Shard `owned` is this process's; every other shard is a handle on its process."""

    def __init__(self, settings: Settings, node: Node, owned: int, metrics: Metrics) -> None:
        self.settings = settings
        self.node = node
        self.owned = owned
        self.metrics = metrics
        self.server: ShardServer | None = None
        self.remotes: dict[int, RemoteShard] = {}
        self._peer_pages: dict[int, bytes] = {}
        # Ready tasks the other processes' feed told of, and those a claim waiting here was
        # woken for (it then claims there: forwarded, cause local_short).
        self.feed = {"heard": 0, "woke": 0}
        # Whether each other process has every link of its own up, as it last said: this one
        # reports ready only when all of them do, so that a probe answered by any process
        # means every process can serve every request (not only the one that answered).
        self.peers_linked: dict[int, bool] = {}

    async def open(self, life: Lifecycle, shards: Shards, now_ms: Callable[[], int]) -> None:
        """Serve the own shard, then link to every other; `node.shards` gets all N in order."""
        (local,) = self.node.local_shards
        committer = shards.committers[0]
        reads: dict[str, Callable[..., Awaitable[Any]]] = {
            name: functools.partial(local.read, name) for name in READS
        }
        reads |= {"checkpoint": committer.checkpoint, "metrics": self._own_page, "links": self._links_page}
        if shards.topology is not None:  # under Raft: this process's group, for the others
            own = functools.partial(_own_group, shards)
            s = self.settings
            members = MembershipService(shards.groups, s.raft.self_id, s.store.num_shards)
            reads |= own_group_reads(own, shards.transfer_leader, members.apply)
        server = ShardServer(f"unix:{socket_path(self.settings, self.owned)}", local, reads)
        life.on_close("shard server", server.close)
        self.server = server
        self.node.waiters.unclaimed = server.unclaimed
        waiters = self.node.waiters
        server.takers = lambda tenant, key: waiters.has_takers(tenant, key, now_ms())
        handles: list[ShardHandle] = []
        for number in range(self.settings.store.num_shards):
            if number == self.owned:
                handles.append(local)
                continue
            remote = self._link(life, number, now_ms)
            self.remotes[number] = remote
            handles.append(remote)
        self.node.shards = handles
        self.metrics.registry.register(_CommandRoutes(local, server, self.remotes, self.feed))
        announce = Runner("ready-feed", server.announce, now_ms, interval_seconds=ANNOUNCE_SECONDS)
        await life.enter("ready feed", announce)
        links = Runner("peer-links", self.check_peers, now_ms, interval_seconds=LINKS_SECONDS)
        await life.enter("peer links", links)
        if shards.topology is not None:
            await self._follow_groups(life, shards, now_ms)

    async def _follow_groups(self, life: Lifecycle, shards: Shards, now_ms: Callable[[], int]) -> None:
        """Keep a view of the other processes' Raft groups (leadership, readiness, status)."""
        remotes = {n: r for n, r in self.remotes.items() if isinstance(r, RaftRemoteShard)}
        assert shards.topology is not None
        peers = PeerGroups(remotes, shards.topology.learn)
        shards.peer_groups = peers
        runner = Runner("peer-raft-groups", peers.refresh, now_ms, interval_seconds=REFRESH_SECONDS)
        await life.enter("peer raft groups", runner)

    async def balance_streams(
        self, life: Lifecycle, streams: StreamServers, now_ms: Callable[[], int]
    ) -> None:
        """Once this process takes streams: share how many it holds with the other shard
        processes, and send a new one elsewhere when this process holds more than the least
        loaded one (`cluster/stream_table.py`)."""
        path = table_path(self.settings.store.path)
        try:
            table = StreamTable(path, self.settings.store.num_shards, self.owned, now_ms)
        except (OSError, ValueError) as exc:  # started without a supervisor: streams stay where they land
            log.warning("streams are not balanced over the shard processes: %s", exc)
            return

        async def close() -> None:  # before the streams end: the others stop counting on this one
            table.close()

        life.on_close("stream table", close)
        balance = StreamBalance(table)
        for server in (streams.producer, streams.worker):
            if server is not None:
                server.servicer.admission = balance
        self.metrics.registry.register(_StreamCounts(balance))
        table.beat()  # up from now: the others may send streams this way
        beat = Runner("stream-table", table.tick, now_ms, interval_seconds=BEAT_SECONDS)
        await life.enter("stream table", beat)

    async def accept_peers(self) -> None:
        """Let the other shard processes link to this one: called once this process serves
        HTTP, so that a peer that reports ready (every link up) knows all N are serving."""
        assert self.server is not None, "open() first"
        await self.server.start()

    def _link(self, life: Lifecycle, number: int, now_ms: Callable[[], int]) -> RemoteShard:
        waiters = self.node.waiters

        elsewhere = self.node.elsewhere_ready
        feed = self.feed

        def on_ready(tenant: str, key: str, count: int, takers: bool) -> None:
            remote.heard_ready(tenant, key, takers, now_ms())
            left = waiters.ready(tenant, key, count)  # a long poll here may claim it there
            feed["heard"] += count
            feed["woke"] += count - left
            for hear in elsewhere:
                hear(tenant, key)

        link = PeerLink(f"unix:{socket_path(self.settings, number)}", on_ready)
        # Under Raft another node may lead that shard: the handle follows its group's state.
        remote = RaftRemoteShard(number, link) if self.settings.raft.enabled else RemoteShard(number, link)
        link.start()
        life.on_close(f"link to shard {number}", link.close)
        return remote

    def ready(self) -> tuple[bool, str]:
        """Not ready while a peer is not linked, yet or again (a dropped link reconnects), nor
        while another process says it is not linked to every shard (`check_peers`)."""
        for number, remote in self.remotes.items():
            if remote.link.lost:
                return False, f"lost the link to the process of shard {number}; connecting again"
            if not remote.link.connected:
                return False, f"waiting for the process of shard {number}"
        for number in self.remotes:
            if not self.peers_linked.get(number, False):
                return False, f"the process of shard {number} is not linked to every shard yet"
        return True, ""

    def links_up(self) -> bool:
        """Whether every link of this process to the others is up."""
        return all(remote.link.connected and not remote.link.lost for remote in self.remotes.values())

    def _links_page(self) -> Awaitable[bool]:
        async def up() -> bool:
            return self.links_up()

        return up()

    async def check_peers(self) -> int | None:
        """Ask every other process whether its own links are all up (a background tick)."""
        for number, remote in self.remotes.items():
            linked = False
            if remote.link.connected:
                try:
                    linked = bool(await asyncio.wait_for(remote.read("links"), LINKS_SECONDS * 4))
                except Exception:  # gone, refusing or slow: not linked, and asked again next tick
                    linked = False
            self.peers_linked[number] = linked
        return None

    def checkpoints(self, own: Callable[[str], Awaitable[None]]) -> list[Callable[[str], Awaitable[None]]]:
        """Every shard's checkpoint in order: the own one here, the others in their process."""
        found: list[Callable[[str], Awaitable[None]]] = []
        for number in range(self.settings.store.num_shards):
            remote = self.remotes.get(number)
            found.append(own if remote is None else _remote_checkpoint(remote))
        return found

    def _own_page(self) -> Awaitable[bytes]:
        async def page() -> bytes:
            return self.metrics.render()[0]

        return page()

    async def render(self) -> tuple[bytes, str]:
        """The node's page: every shard process's series, each labelled with its shard. The
        other processes' pages are asked for now, when somebody scrapes (not on a timer, which
        cost every process a rendering a second); one that does not answer within
        PEER_PAGE_SECONDS appears as it last did."""
        body, content_type = self.metrics.render()
        await asyncio.gather(*(self._fetch_page(number, remote) for number, remote in self.remotes.items()))
        pages = {self.owned: body, **self._peer_pages}
        return merge_pages(sorted(pages.items())), content_type

    async def _fetch_page(self, number: int, remote: RemoteShard) -> None:
        if not remote.link.connected:
            return
        try:
            self._peer_pages[number] = await asyncio.wait_for(remote.read("metrics"), PEER_PAGE_SECONDS)
        except Exception as exc:  # gone, refusing or slow: its last page stands
            log.debug("shard %d's metrics page: %r", number, exc)


def _own_group(shards: Shards) -> GroupSnapshot:
    (group,) = shards.groups.values()
    return snapshot_of(group, shards.own_problem())


def _remote_checkpoint(remote: RemoteShard) -> Callable[[str], Awaitable[None]]:
    async def checkpoint(dest: str) -> None:
        await remote.read("checkpoint", dest)

    return checkpoint


class _CommandRoutes(Collector):
    """`codeq_shard_commands_total{route}`: commands this process submitted to its own shard
    (`local`) and to the other shards' processes (`forwarded`), read at scrape time."""

    def __init__(
        self, local: Shard, server: ShardServer, remotes: dict[int, RemoteShard], feed: dict[str, int]
    ) -> None:
        self._local = local
        self._server = server
        self._remotes = remotes
        self._feed = feed

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "codeq_shard_commands", "Commands submitted by this process, by route.", labels=["route"]
        )
        # The own shard also applies what peers forwarded here; those are theirs to count.
        family.add_metric(["local"], self._local.submitted - self._server.served)
        family.add_metric(["forwarded"], sum(r.link.forwarded for r in self._remotes.values()))
        yield family
        yield from self._what_crosses()

    def _what_crosses(self) -> Iterator[CounterMetricFamily]:
        """The forwarded commands by kind and cause, the tasks forwarded claims got, and the
        ready feed's tasks: offered to peers, heard from them, and those that woke a claim here."""
        by_kind = CounterMetricFamily(
            "codeq_shard_forwarded",
            "Commands this process sent to other shard processes, by kind and cause.",
            labels=["kind", "cause"],
        )
        tasks = CounterMetricFamily(
            "codeq_shard_forwarded_claimed_tasks",
            "Tasks that claims forwarded from this process got, by cause.",
            labels=["cause"],
        )
        kinds: Counter[tuple[str, str]] = Counter()
        claimed: Counter[str] = Counter()
        for remote in self._remotes.values():
            kinds.update(remote.link.forwarded_by)
            claimed.update(remote.link.claimed_across)
        for (kind, cause), count in sorted(kinds.items()):
            by_kind.add_metric([kind, cause], count)
        for cause, count in sorted(claimed.items()):
            tasks.add_metric([cause], count)
        feed = CounterMetricFamily(
            "codeq_shard_ready_feed_tasks",
            "Ready tasks of the feed between shard processes: offered by this one, heard from the others, "
            "and heard that woke a claim waiting here.",
            labels=["what"],
        )
        feed.add_metric(["offered"], self._server.offered)
        for what, count in self._feed.items():
            feed.add_metric([what], count)
        yield from (by_kind, tasks, feed)


class _StreamCounts(Collector):
    """The streams this process holds (`codeq_grpc_streams{kind}`) and those it sent to
    another process (`codeq_grpc_stream_rebalanced_total{kind}`), read at scrape time."""

    def __init__(self, balance: StreamBalance) -> None:
        self._balance = balance

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        held = GaugeMetricFamily(
            "codeq_grpc_streams", "Authenticated gRPC streams this process holds.", labels=["kind"]
        )
        refused = CounterMetricFamily(
            "codeq_grpc_stream_rebalanced",
            "Streams refused after Hello so that the client connects again to a less loaded process.",
            labels=["kind"],
        )
        for kind, count in self._balance.table.counts.items():
            held.add_metric([kind], count)
            refused.add_metric([kind], self._balance.refused[kind])
        yield held
        yield refused
