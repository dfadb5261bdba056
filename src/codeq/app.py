"""The composition root: builds stores, engines, services and transports, and stops them in order."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from codeq.auth.edge import Authenticator
from codeq.config import Settings
from codeq.core.clock import Clock, SystemClock
from codeq.engine.commands import decode_command, encode_command
from codeq.engine.engine import Engine, EngineConfig
from codeq.kv.api import KV
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.observability.metrics import Metrics
from codeq.replication.api import Replicator
from codeq.replication.group import GroupOptions, RaftGroup
from codeq.replication.raft import DurableJournal, RaftCore, make_conf
from codeq.replication.single import SingleNode
from codeq.replication.snapshot import Snapshots
from codeq.replication.topology import GroupStatus, Topology
from codeq.service import listeners
from codeq.service.admin import AdminService
from codeq.service.background import Runner
from codeq.service.backup import BackupService
from codeq.service.callback_hosts import CallbackHosts
from codeq.service.container import Services
from codeq.service.dlq import DlqService
from codeq.service.maintenance import Maintenance
from codeq.service.node import Node, Shard
from codeq.service.notifier import Notifier
from codeq.service.policy import Policy
from codeq.service.ratelimit import ADMIN, PRODUCER, WORKER, BucketPolicy, OutboundLimiter, RateLimiter
from codeq.service.results import ResultService
from codeq.service.subscriptions import SubscriptionService, SubscriptionSettings
from codeq.service.tasks import TaskService
from codeq.service.topics import TopicService
from codeq.service.waiters import Waiters
from codeq.service.webhooks import CallbackSettings, H1Poster, ResultCallbacks
from codeq.transport.grpc.server import StreamServers
from codeq.transport.grpc.servicer import StreamLimits
from codeq.transport.http.app import build_app
from codeq.transport.http.asgi import ASGIApp
from codeq.transport.http.render import TimeFormat

log = logging.getLogger("codeq.app")


@dataclass(slots=True)
class StartupReport:
    live_tasks: int = 0
    recovery_seconds: float = 0.0
    shard_paths: list[str] = field(default_factory=list)


class App:
    """One codeq node. `start()` opens and recovers the stores; `stop()` drains and closes them."""

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.node = Node(Waiters(), self.metrics)
        self.committers: list[GroupCommitter] = []
        self.report = StartupReport()
        self.services: Services | None = None
        self.runner: Runner | None = None
        self.asgi: ASGIApp | None = None
        self.streams = StreamServers()
        self.jwks_refresher: Runner | None = None
        self.callbacks: ResultCallbacks | None = None
        self.callback_runner: Runner | None = None
        self.hosts = CallbackHosts.from_lists(settings.webhook_allow_hosts, settings.webhook_deny_hosts)
        self.notifier: Notifier | None = None
        # One `rateLimit.webhook` bucket per callback URL, shared by callbacks and notifications.
        rates = settings.rate_limit
        self.outbound = OutboundLimiter(
            BucketPolicy(rates.webhook_requests_per_minute, rates.webhook_burst_size), self.clock
        )
        self.extra_runners: list[Runner] = []
        self.groups: list[RaftGroup] = []
        raft = settings.raft
        self.topology = (
            Topology(
                raft.self_id,
                raft.bind_addr,
                raft.peers or {raft.self_id: raft.bind_addr},
                raft.peer_http_addrs,
                {"producer": raft.peer_producer_streams, "worker": raft.peer_worker_streams},
            )
            if raft.enabled
            else None
        )

    async def start(self) -> None:
        started = time.perf_counter()
        # Recovery builds one object graph per live task and none of it is garbage: skip the
        # collector while it runs, then freeze the result out of every later collection.
        gc.disable()
        try:
            for number, kv in enumerate(self._open_stores()):
                self._add_shard(number, kv)
        finally:
            gc.enable()
            gc.freeze()
        tune_gc()
        self.report.recovery_seconds = time.perf_counter() - started
        policy = _policy(self.settings)
        limiter = _rate_limiter(self.settings, self.clock, self.metrics)
        self.services = Services(
            auth=Authenticator.from_settings(self.settings, self.clock),
            tasks=TaskService(self.node, self.clock, policy, limiter=limiter),
            results=ResultService(self.node, self.clock, policy),
            admin=AdminService(self.node, self.clock, limiter),
            ready=self._ready,
            dlq=DlqService(self.node, self.clock),
            backup=BackupService(
                [committer.checkpoint for committer in self.committers],
                self.clock,
                enabled=self.settings.persistence.provider != "memory",
                root=self.settings.backup_root,
                root_required=self.settings.env != "dev",
            ),
            subscriptions=SubscriptionService(
                self.node, self.clock, self.hosts, _subscription_settings(self.settings)
            ),
            topics=TopicService(self.node, self.clock),
            raft_status=self._raft_status,
        )
        self._start_jwks_refresher(self.services.auth)
        maintenance = Maintenance(self.node, self.clock)
        self.runner = Runner("reaper", maintenance.tick, self.clock.now_ms)
        self.node.listen("reaper", listeners.on_due(self.runner.wake_by))
        self.runner.start()
        self._start_callbacks(self.services)
        self._start_notifier(self.services)
        self.metrics.register_queue_depth(self._queue_depths)
        self.metrics.register_waiting(lambda: len(self.node.waiters))
        self.asgi = build_app(
            self.services,
            times=TimeFormat(ZoneInfo(self.settings.timezone)),
            max_body_bytes=self.settings.limits.max_body_bytes,
            metrics=self.metrics.render,
        )
        self.streams = StreamServers.build(
            self.services,
            producer_addr=self.settings.producer_stream_addr,
            worker_addr=self.settings.worker_stream_addr,
            limits=StreamLimits(max_message_bytes=self.settings.grpc_max_message_bytes),
        )
        try:
            await self.streams.start()
        except BaseException:
            await self.stop()  # a listener that cannot bind must not leave the stores open
            raise

    def _start_jwks_refresher(self, auth: Authenticator) -> None:
        """Keep JWKS keys fresh off the event loop, so a request waits on a fetch only for a kid
        it has never seen (spec 03 gap 3)."""
        key_sets = auth.key_sets()
        if not key_sets:
            return
        for key_set in key_sets:
            key_set.refreshed_in_background = True

        async def tick() -> None:
            for key_set in key_sets:
                await asyncio.to_thread(key_set.refresh_if_due)

        self.jwks_refresher = Runner("jwks-refresh", tick, self.clock.now_ms, interval_seconds=5.0)
        self.jwks_refresher.start()

    def _start_callbacks(self, services: Services) -> None:
        """Result callbacks: the outbox delivery runner, and the host checks on create."""
        s = self.settings
        hosts = self.hosts
        services.tasks.callback_hosts = hosts
        settings = CallbackSettings(
            secret=s.webhook_hmac_secret,
            max_attempts=s.result_webhook_max_attempts,
            base_backoff_seconds=s.result_webhook_base_backoff_seconds,
            max_backoff_seconds=s.result_webhook_max_backoff_seconds,
        )
        callbacks = ResultCallbacks(
            self.node,
            self.clock,
            settings,
            hosts,
            H1Poster(),
            timestamp=TimeFormat(ZoneInfo(s.timezone)).timestamp,
            metrics=self.metrics,
            limiter=self.outbound,
        )
        self.metrics.register_outbox_pending(
            lambda: sum(len(shard.engine.outbox.entries) for shard in self.node.shards)
        )
        runner = Runner("result-callbacks", callbacks.tick, self.clock.now_ms)
        callbacks.on_settled = runner.poke
        self.node.listen("result-callbacks", listeners.on_callback_owed(runner.poke))
        runner.start()
        self.callbacks, self.callback_runner = callbacks, runner

    def _start_notifier(self, services: Services) -> None:
        """Queue-ready notifications and the subscription expiry sweep, off the request path."""
        s = self.settings
        notifier = Notifier(
            self.node,
            self.clock,
            self.hosts,
            H1Poster(),
            secret=s.webhook_hmac_secret,
            metrics=self.metrics,
            limiter=self.outbound,
        )
        runner = Runner("notifier", notifier.tick, self.clock.now_ms)
        notifier.on_marked = runner.poke
        self.node.listen("notifier", listeners.on_ready(notifier.ready))
        cleanup = Runner(
            "subscription-cleanup",
            services.subscriptions.cleanup_tick,
            self.clock.now_ms,
            interval_seconds=s.subscription_cleanup_interval_seconds,
        )
        for each in (runner, cleanup):
            each.start()
        self.notifier, self.extra_runners = notifier, [runner, cleanup]

    def _open_stores(self) -> list[KV]:
        persistence = self.settings.persistence
        if persistence.provider == "memory":
            return [MemoryKV() for _ in range(persistence.num_shards)]
        from codeq.kv.rocks import RocksKV  # only the embedded provider needs RocksDB loaded

        if persistence.num_shards <= 1:
            paths = [persistence.path]
        else:
            paths = [os.path.join(persistence.path, f"shard{i}") for i in range(persistence.num_shards)]
        self.report.shard_paths = paths
        return [RocksKV(path) for path in paths]

    def _add_shard(self, number: int, kv: KV) -> None:
        persistence = self.settings.persistence
        shard_label = str(number)

        def observe(count: int, seconds: float) -> None:
            self.metrics.observe_commit(shard_label, count, seconds)

        committer = GroupCommitter(
            kv,
            # Under Raft the fsynced journal makes a write durable; the store keeps the applied
            # index with every batch, so a lost unsynced tail is re-applied from the journal.
            fsync=persistence.fsync_on_commit and self.topology is None,
            max_pending_bytes=persistence.max_pending_bytes,
            name=f"kv-shard{number}",
            on_commit=observe,
        )
        committer.start()
        engine = Engine(committer, _engine_config(self.settings))
        self.report.live_tasks += engine.recover(self.clock.now_ms())
        replicator = self._replicator(number, engine, committer)
        self.committers.append(committer)
        self.node.shards.append(Shard(number, engine, replicator))

    def _replicator(self, number: int, engine: Engine, committer: GroupCommitter) -> Replicator:
        topology = self.topology
        publish = self.node.publisher(engine)
        if topology is None:
            return SingleNode(engine.apply, committer, publish)
        from codeq.kv.rocks import RocksKV  # snapshots open RocksDB checkpoints

        journal_dir = os.path.join(self.settings.persistence.path, "raft", f"shard{number}")
        os.makedirs(journal_dir, mode=0o700, exist_ok=True)
        snapshots = Snapshots(committer, RocksKV, os.path.join(journal_dir, "snapshot"))
        raft = self.settings.raft
        conf = make_conf(secret=raft.secret, timing=raft.timing(), snapshots=snapshots)
        conf.bindAddress = topology.bind(number)

        def make_core(hook: Callable[[int, bytes], Any]) -> RaftCore:
            journal = DurableJournal(os.path.join(journal_dir, "journal"))
            # Peers compare their shard counts on connect; a mismatch stops the group (gap 7).
            shape = f"shards={self.settings.persistence.num_shards}"
            return RaftCore(
                topology.self_addr(number), topology.addrs(number), conf, hook, journal, shape=shape
            )

        options = GroupOptions(
            encode=encode_command,
            decode=decode_command,
            leader_url=topology.leader_url(number),
            leader_streams=topology.leader_streams(number),
            # One group leads everything anyway; with several, spread their leaders.
            preferred_leader=(
                topology.preferred_leader(number) if self.settings.persistence.num_shards > 1 else None
            ),
            proposal_timeout_s=float(raft.apply_timeout_seconds),
            snapshots=snapshots,
            on_restored=lambda: self._recovered(engine),
        )
        group = RaftGroup(make_core, engine.apply, committer, options, publish)
        group.start()
        self.groups.append(group)
        log.info("raft group %d: %s, peers %s", number, topology.self_addr(number), topology.addrs(number))
        return group

    def _recovered(self, engine: Engine) -> None:
        """A snapshot replaced this shard's store: rebuild its in-memory index from it."""
        engine.recover(self.clock.now_ms())

    def _raft_status(self) -> list[GroupStatus]:
        return [] if self.topology is None else self.topology.status(self.groups)

    def _ready(self) -> tuple[bool, str]:
        if any(committer.failed for committer in self.committers):
            return False, "a store failed a write"
        for group in self.groups:
            if group.failed is not None:
                return False, f"a raft replica stopped: {group.failed}"
            problem = group.core.shape_problem() if isinstance(group.core, RaftCore) else None
            if problem is not None:
                return False, problem
        if self.runner is None or not self.runner.running:
            return False, "background work is not running"
        return True, ""

    def _queue_depths(self) -> list[tuple[str, str, str, int]]:
        rows: list[tuple[str, str, str, int]] = []
        for shard in self.node.shards:
            for (tenant, command), queue in shard.engine.index.queues.items():
                rows.append((tenant, command, "ready", queue.ready))
                rows.append((tenant, command, "delayed", queue.delayed))
                rows.append((tenant, command, "in_progress", queue.in_progress))
            for (tenant, command), count in shard.engine.index.dlq_counts.items():
                rows.append((tenant, command, "dlq", count))
        return rows

    async def stop(self) -> None:
        """End the streams, stop background work, then write everything pending and close each store.

        The streams go first: their handlers still call the services, which need the stores.
        """
        await self.streams.stop(self.settings.shutdown_grace_seconds)
        if self.jwks_refresher is not None:
            await self.jwks_refresher.stop()
        if self.runner is not None:
            await self.runner.stop()
        for runner in self.extra_runners:
            await runner.stop()
        if self.notifier is not None:
            await self.notifier.stop()
            await self.notifier.poster.aclose()
        if self.callback_runner is not None and self.callbacks is not None:
            await self.callback_runner.stop()
            await self.callbacks.stop()
        for group in self.groups:
            await group.stop()  # Raft stops before its store closes
        for committer in self.committers:
            await committer.close()


def tune_gc() -> None:
    """Collect less often: tasks hold no reference cycles, and with many live tasks the
    default thresholds spend a large share of the CPU re-scanning them (bench/engine_bench)."""
    gc.set_threshold(max(gc.get_threshold()[0], 10_000), 20, 20)


def _policy(settings: Settings) -> Policy:
    limits = settings.limits
    return Policy(
        default_lease_seconds=settings.default_lease_seconds,
        max_attempts_default=settings.max_attempts_default,
        max_lease_seconds=limits.max_lease_seconds,
        max_delay_seconds=limits.max_delay_seconds,
        max_attempts=limits.max_attempts,
        max_payload_bytes=limits.max_payload_bytes,
        max_batch_size=limits.max_batch_size,
        max_claim_batch=limits.max_claim_batch,
        max_claim_wait_seconds=limits.max_claim_wait_seconds,
        max_result_wait_seconds=limits.max_result_wait_seconds,
    )


def _subscription_settings(settings: Settings) -> SubscriptionSettings:
    return SubscriptionSettings(
        default_ttl_seconds=settings.subscription_default_ttl_seconds,
        max_ttl_seconds=settings.subscription_max_ttl_seconds,
        default_min_interval_seconds=settings.subscription_min_interval_seconds,
    )


def _rate_limiter(settings: Settings, clock: Clock, metrics: Metrics) -> RateLimiter:
    r = settings.rate_limit
    policies = {
        PRODUCER: BucketPolicy(r.producer_requests_per_minute, r.producer_burst_size),
        WORKER: BucketPolicy(r.worker_requests_per_minute, r.worker_burst_size),
        ADMIN: BucketPolicy(r.admin_requests_per_minute, r.admin_burst_size),
    }

    def on_hit(scope: str, operation: str) -> None:
        metrics.rate_limit_hits.labels(scope, operation).inc()

    return RateLimiter(policies, clock, r.key_by, on_hit)


def _engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        backoff=settings.backoff,
        retention_ms=settings.retention_seconds * 1000,
        idempotency_ttl_ms=settings.idempotency_ttl_seconds * 1000,
        retention_completed_ms=settings.retention_completed_seconds * 1000,
        retention_failed_ms=settings.retention_failed_seconds * 1000,
        retention_dead_lettered_ms=settings.retention_dead_lettered_seconds * 1000,
    )
