"""The shards of one node: each one's store, group committer, engine and replicator, opened in order."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codeq.app.lifecycle import Lifecycle
from codeq.app.wiring import engine_config, store_memory
from codeq.config import RaftSettings, Settings
from codeq.core.clock import Clock
from codeq.core.errors import InvalidInput, Unavailable
from codeq.engine.commands import decode_command, encode_command
from codeq.engine.engine import Engine
from codeq.kv.api import KV
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.observability.metrics import Metrics, RaftGroupState
from codeq.observability.shard import ShardObserver
from codeq.replication.api import Replicator
from codeq.replication.group import GroupOptions, RaftGroup
from codeq.replication.journal import DurableJournal
from codeq.replication.membership import group_members
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import make_conf
from codeq.replication.single import SingleNode
from codeq.replication.snapshot import Snapshots
from codeq.replication.topology import GroupStatus, GroupView, Topology, shift_port
from codeq.service.node import Node, Shard

if TYPE_CHECKING:  # tracing imports OpenTelemetry, which only the `otel` extra installs
    from codeq.app.shard_raft import PeerGroups
    from codeq.observability.tracing import Tracing
    from codeq.service.membership import MemberRequest, MembershipOutcome

log = logging.getLogger("codeq.app")


@dataclass(slots=True)
class StartupReport:
    live_tasks: int = 0
    recovery_seconds: float = 0.0
    shard_paths: list[str] = field(default_factory=list)


def topology_of(raft: RaftSettings) -> Topology | None:
    """Who the Raft peers are, or None for a single node."""
    if not raft.enabled:
        return None
    return Topology(
        raft.self_id,
        raft.bind_addr,
        raft.peers or {raft.self_id: raft.bind_addr},
        raft.peer_http_addrs,
        {"producer": raft.peer_producer_streams, "worker": raft.peer_worker_streams},
    )


class Shards:
    """Opens every shard of the node into `node.shards`, each registering its own closes."""

    def __init__(
        self, settings: Settings, node: Node, clock: Clock, metrics: Metrics, owned: int | None = None
    ) -> None:
        self.settings = settings
        # With a process per shard, the one shard this process opens (ADR 0009); None: all.
        self.owned = owned
        self.node = node
        self.clock = clock
        self.metrics = metrics
        self.tracing: Tracing | None = None  # set by the app when tracing is on
        self.topology = topology_of(settings.raft)
        self.committers: list[GroupCommitter] = []
        self.groups: dict[int, RaftGroup] = {}  # by shard number: only this process's own
        # With a process per shard under Raft: the other processes' groups (app/shard_raft.py).
        self.peer_groups: PeerGroups | None = None
        self.report = StartupReport()

    def open(self, life: Lifecycle) -> None:
        started = time.perf_counter()
        # Recovery builds one object graph per live task and none of it is garbage: skip the
        # collector while it runs, then freeze the result out of every later collection.
        gc.disable()
        try:
            for number, kv in self._open_stores():
                self._add_shard(life, number, kv)
        finally:
            gc.enable()
            gc.freeze()
        tune_gc()
        self.report.recovery_seconds = time.perf_counter() - started

    def ready(self) -> tuple[bool, str]:
        """Whether every store and Raft replica can still take writes, and why not (the first
        shard's problem, in shard order, so that every shard process gives the same answer;
        a shard process not heard from yet comes last, as it says nothing of its group)."""
        if any(committer.failed for committer in self.committers):
            return False, "a store failed a write"
        for number in range(self.settings.store.num_shards):
            group = self.groups.get(number)
            if group is not None:
                problem = group_problem(number, group)
            else:  # another shard process's group, or no Raft
                problem = None if self.peer_groups is None else self.peer_groups.problem(number)
            if problem is not None:
                return False, problem
        waiting = None if self.peer_groups is None else self.peer_groups.waiting()
        return (False, waiting) if waiting is not None else (True, "")

    def own_problem(self) -> str | None:
        """Why a store or Raft replica this process opened cannot take writes, if one cannot."""
        if any(committer.failed for committer in self.committers):
            return "a store failed a write"
        for number, group in self.groups.items():
            problem = group_problem(number, group)
            if problem is not None:
                return problem
        return None

    def raft_states(self) -> list[RaftGroupState]:
        """Each Raft group's state for the metrics, read at scrape time."""
        states = []
        for number, group in self.groups.items():
            status = group.core.getStatus()  # PySyncObj's own consistent-enough snapshot
            states.append(
                RaftGroupState(
                    group=str(number),
                    is_leader=group.is_leader,
                    has_leader=group.leader_address is not None,
                    term=int(status["raft_term"]),
                    commit_index=int(status["commit_idx"]),
                    applied_index=int(status["last_applied"]),
                    proposals_waiting=group.proposals_waiting,
                )
            )
        return states

    def raft_status(self, ready_of: Callable[[str], bool | None] = lambda node: None) -> list[GroupStatus]:
        """Each group as this node sees it; `ready_of(node id)` says which voters are ready."""
        if self.topology is None:
            return []
        views: list[GroupView] = []
        for number in range(self.settings.store.num_shards):
            group = self.groups.get(number)
            if group is None:
                assert self.peer_groups is not None, "a group neither here nor in a shard process"
                views.append(self.peer_groups.view(number))
            else:
                views.append(group)
        return self.topology.status(views, ready_of)

    async def transfer_leader(self, shard: int, to: str, timeout_s: float = 3.0) -> str:
        """Hand shard `shard`'s leadership to node `to` (this node must lead it); returns the
        id of the node leading it afterwards."""
        topology = self.topology
        if topology is None:
            raise InvalidInput("raft is not enabled on this node", field="shard")
        num_shards = self.settings.store.num_shards
        if not 0 <= shard < num_shards:
            raise InvalidInput(f"shard must be 0..{num_shards - 1}", field="shard")
        to_raft = topology.raft_of(to)
        if to_raft is None:
            raise InvalidInput(f"unknown node {to!r}: the peers are {sorted(topology.peers)}", field="to")
        group = self.groups.get(shard)
        if group is None:  # another shard process runs this group: it hands it over
            assert self.peer_groups is not None, "a group neither here nor in a shard process"
            return await self.peer_groups.transfer_leader(shard, to)
        if not group.core.is_leader:
            raise group.not_leader()
        if to == topology.self_id:
            return to
        leader = await group.transfer_leadership(shift_port(to_raft, shard), timeout_s)
        if leader is None:
            raise Unavailable(f"node {to} did not take over shard {shard} in time (behind, or unreachable)")
        return topology.id_of(leader, shard)

    async def change_members_elsewhere(self, request: MemberRequest) -> MembershipOutcome:
        """A membership change of a group another shard process runs (ADR 0009)."""
        if self.peer_groups is None:
            raise InvalidInput(f"shard {request.shard}'s group does not run here", field="shard")
        return await self.peer_groups.change_members(request)

    async def hand_over_leadership(self, timeout_s: float = 2.0) -> None:
        """Before this node stops: pass each group it leads to an up-to-date peer, so that the
        cluster need not wait out an election timeout (a rolling restart loses no writes)."""
        if self.topology is None or len(self.topology.peers) < 2:
            return
        # With a process per shard, each process hands over its own group as it stops.
        led = [(n, g) for n, g in self.groups.items() if g.core.is_leader and g.failed is None]
        leaders = await asyncio.gather(*(g.transfer_leadership(None, timeout_s) for _, g in led))
        for (number, _), leader in zip(led, leaders, strict=True):
            log.info("raft group %d: leadership handed to %s before stopping", number, leader or "nobody")

    def _open_stores(self) -> list[tuple[int, KV]]:
        store = self.settings.store
        numbers = range(store.num_shards) if self.owned is None else [self.owned]
        if store.provider == "memory":
            return [(number, MemoryKV()) for number in numbers]
        from codeq.kv.rocks import RocksKV  # only the embedded provider needs RocksDB loaded

        if store.num_shards <= 1:
            paths = [store.path]
        else:  # the same layout whether the shards share a process or not
            paths = [os.path.join(store.path, f"shard{i}") for i in numbers]
        self.report.shard_paths = paths
        budget = store_memory(store)
        return [(number, RocksKV(path, budget)) for number, path in zip(numbers, paths, strict=True)]

    def _add_shard(self, life: Lifecycle, number: int, kv: KV) -> None:
        store = self.settings.store
        # Under Raft the fsynced journal makes a write durable; the store keeps the applied
        # index with every batch, so a lost unsynced tail is re-applied from the journal.
        fsync = store.fsync_on_commit and self.topology is None
        watch = ShardObserver(self.metrics, self.tracing, number, fsync=fsync)
        committer = GroupCommitter(
            kv,
            fsync=fsync,
            max_pending_bytes=store.max_pending_bytes,
            name=f"kv-shard{number}",
            on_commit=watch.commit,
        )
        committer.start()
        # Closing writes what is pending, then closes the store; Raft (below) stops before it.
        life.on_close(f"store {number}", committer.close)
        self.committers.append(committer)
        engine = Engine(committer, engine_config(self.settings))
        self.report.live_tasks += engine.recover(self.clock.now_ms())
        replicator = self._replicator(life, number, engine, committer, watch)
        self.node.shards.append(Shard(number, engine, replicator))

    def _replicator(
        self, life: Lifecycle, number: int, engine: Engine, committer: GroupCommitter, watch: ShardObserver
    ) -> Replicator:
        topology = self.topology
        publish = self.node.publisher(engine)
        apply = watch.traced(engine.apply)
        if topology is None:
            return SingleNode(apply, committer, publish)
        from codeq.kv.rocks import RocksKV  # snapshots open RocksDB checkpoints

        journal_dir = os.path.join(self.settings.store.path, "raft", f"shard{number}")
        os.makedirs(journal_dir, mode=0o700, exist_ok=True)
        snapshots = Snapshots(committer, RocksKV, os.path.join(journal_dir, "snapshot"))
        raft = self.settings.raft
        conf = make_conf(secret=raft.secret, timing=raft.timing(), snapshots=snapshots)
        conf.bindAddress = topology.bind(number)
        num_shards = self.settings.store.num_shards
        members = group_members(topology, number, journal_dir, join=raft.join)
        snapshots.roster = members

        def make_core(hook: Callable[[int, bytes], Any]) -> RaftCore:
            journal = DurableJournal(os.path.join(journal_dir, "journal"))
            # Peers compare their shard counts on connect; a mismatch stops the group (gap 7).
            shape = f"shards={num_shards}"
            return RaftCore(
                topology.self_addr(number),
                topology.addrs(number),
                conf,
                hook,
                journal,
                shape=shape,
                members=members,
            )

        options = GroupOptions(
            encode=encode_command,
            decode=decode_command,
            leader_url=topology.leader_url(number),
            leader_streams=topology.leader_streams(number),
            # One group leads everything anyway; with several, spread their leaders.
            preferred_leader=topology.preferred_leader(number) if num_shards > 1 else None,
            proposal_timeout_s=float(raft.apply_timeout_seconds),
            snapshots=snapshots,
            on_restored=lambda: self._recovered(engine),
            on_decided=watch.raft_decided,
            on_applied=watch.raft_applied,
        )
        group = RaftGroup(make_core, apply, committer, options, publish)
        group.start()
        life.on_close(f"raft group {number}", group.stop)
        self.groups[number] = group
        log.info("raft group %d: %s, peers %s", number, topology.self_addr(number), topology.addrs(number))
        return group

    def _recovered(self, engine: Engine) -> None:
        """A snapshot replaced this shard's store: rebuild its in-memory index from it."""
        engine.recover(self.clock.now_ms())


def tune_gc() -> None:
    """Collect less often: tasks hold no reference cycles, and with many live tasks the
    default thresholds spend a large share of the CPU re-scanning them (bench/engine_bench)."""
    gc.set_threshold(max(gc.get_threshold()[0], 10_000), 20, 20)


def group_problem(shard: int, group: RaftGroup) -> str | None:
    """Why a shard's group cannot take writes through this node: its replica stopped, its
    peers disagree on the shape, this node reaches no majority, or it knows no live leader
    (every write would be refused with 503 meanwhile, so the node must not say it is ready)."""
    if group.failed is not None:
        return f"a raft replica stopped: {group.failed}"
    core = group.core
    if isinstance(core, RaftCore):
        problem = core.shape_problem() or core.reach_problem()
        if problem is not None:
            return problem
    if group.leader_address is None:
        return f"shard {shard} has no known raft leader"
    return None


def queue_depths(node: Node) -> list[tuple[str, str, str, int]]:
    """Every queue's depth by state on the shards this process owns, for the metrics."""
    rows: list[tuple[str, str, str, int]] = []
    for shard in node.local_shards:
        for (tenant, command), queue in shard.engine.index.queues.items():
            rows.append((tenant, command, "ready", queue.ready))
            rows.append((tenant, command, "delayed", queue.delayed))
            rows.append((tenant, command, "in_progress", queue.in_progress))
        for (tenant, command), count in shard.engine.index.dlq_counts.items():
            rows.append((tenant, command, "dlq", count))
    return rows
