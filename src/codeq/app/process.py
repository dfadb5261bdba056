"""One codeq node: start-up opens every part on one lifecycle, shutdown unwinds it in reverse."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from codeq.app import wiring
from codeq.app.lifecycle import Lifecycle
from codeq.app.shard_process import ShardProcess
from codeq.app.shards import Shards, StartupReport, queue_depths
from codeq.auth.edge import Authenticator
from codeq.config import Settings
from codeq.config.tree import ObservabilitySettings
from codeq.core.clock import Clock, SystemClock
from codeq.observability.metrics import Metrics
from codeq.observability.page import MetricsListener, MetricsPage, at_once
from codeq.observability.requests import HttpObserver
from codeq.replication.topology import GroupStatus
from codeq.service import listeners
from codeq.service.admin import AdminService
from codeq.service.background import Runner
from codeq.service.backup import BackupService, CheckpointFn
from codeq.service.callback_hosts import CallbackHosts
from codeq.service.container import Services
from codeq.service.dlq import DlqService
from codeq.service.maintenance import Maintenance
from codeq.service.membership import MembershipService
from codeq.service.node import Node
from codeq.service.notifier import Notifier
from codeq.service.peer_readiness import PeerReadiness
from codeq.service.ratelimit import OutboundLimiter
from codeq.service.results import ResultService
from codeq.service.schedules import ScheduleService
from codeq.service.subscriptions import SubscriptionService
from codeq.service.tasks import TaskService
from codeq.service.topics import TopicService
from codeq.service.waiters import Waiters
from codeq.service.webhooks import H1Poster, Poster, ResultCallbacks
from codeq.transport.grpc.observe import StreamObserver
from codeq.transport.grpc.server import StreamServers
from codeq.transport.grpc.servicer import StreamLimits
from codeq.transport.http.app import build_app
from codeq.transport.http.asgi import ASGIApp
from codeq.transport.http.render import TimeFormat
from codeq.transport.tls import ServerTls

if TYPE_CHECKING:  # tracing imports OpenTelemetry, which only the `otel` extra installs
    from codeq.observability.tracing import Tracing

log = logging.getLogger("codeq.app")

# Peers' /readyz for /raft/status: probed as often as the console polls, each answer awaited
# at most this long, so that a hung peer shows "not ready" within one interval.
PEER_READINESS_INTERVAL_SECONDS = 2.0
PEER_READINESS_TIMEOUT_SECONDS = 1.0


def _tracing(settings: ObservabilitySettings) -> Tracing | None:
    """The node's tracer when `tracingEnabled`; OpenTelemetry is imported only then."""
    if not settings.tracing_enabled:
        return None
    from codeq.observability.tracing import Tracing

    return Tracing(settings)


@dataclass(frozen=True, slots=True)
class Running:
    """What start-up built: it exists from a successful `start()` until `stop()`."""

    services: Services
    asgi: ASGIApp
    streams: StreamServers
    runner: Runner  # the reaper: promotes delayed tasks, expires leases, applies retention
    callbacks: ResultCallbacks
    notifier: Notifier
    jwks_refresher: Runner | None


class App:
    """One codeq node. `start()` opens and recovers the stores, then everything that uses them;
    `stop()` closes all of it in the exact reverse order (`lifecycle` records both)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        owned_shard: int | None = None,  # with a process per shard: this process's (ADR 0009)
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        o = settings.observability
        self.metrics = metrics or Metrics(
            max_series=o.metrics_max_series, tenant_labels=o.metrics_tenant_labels
        )
        self.metrics_page = MetricsPage(at_once(self.metrics.render), self.clock.now_ms)
        self.tracing = _tracing(o)
        self.node = Node(Waiters(), self.metrics)
        self.shards = Shards(settings, self.node, self.clock, self.metrics, owned_shard)
        self.shard_process: ShardProcess | None = None
        if owned_shard is not None:
            self.shard_process = ShardProcess(settings, self.node, owned_shard, self.metrics)
            self.metrics_page = MetricsPage(self.shard_process.render, self.clock.now_ms)
        self.shards.tracing = self.tracing
        self.lifecycle = Lifecycle()
        self.hosts = CallbackHosts.from_lists(settings.webhooks.allow_hosts, settings.webhooks.deny_hosts)
        self.outbound = OutboundLimiter(wiring.outbound_policy(settings.rate_limit), self.clock)
        self._running: Running | None = None
        self._handing_over: asyncio.Task[None] | None = None
        self.metrics_listener: MetricsListener | None = None
        self.peer_readiness: PeerReadiness | None = None  # raft with peers only
        t = settings.tls
        self.tls = ServerTls.from_files(t.cert_file, t.key_file, t.client_ca_file)  # None: plaintext

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open every part in dependency order; a failure closes what was already open."""
        try:
            self._running = await self._open(self.lifecycle)
        except BaseException:
            await self.lifecycle.aclose()  # e.g. a listener that cannot bind: close the stores
            raise

    async def stop(self) -> None:
        """Streams first (their handlers still call the services), then background work, then
        Raft and the stores, each store writing what is pending before it closes."""
        self._running = None
        # While Raft still runs, so that the cluster has no election timeout to wait out.
        await (self._handing_over or self.shards.hand_over_leadership())
        await self.lifecycle.aclose()

    def begin_stop(self) -> None:
        """A stop was asked for (SIGTERM): answer long polls now, and start handing the groups
        this node leads to its peers while requests are still served (they are sent on to
        the new leader), rather than after the listeners closed."""
        self.node.waiters.close()
        if self._handing_over is None:
            self._handing_over = asyncio.get_running_loop().create_task(self.shards.hand_over_leadership())

    @property
    def report(self) -> StartupReport:
        return self.shards.report

    @property
    def running(self) -> Running:
        if self._running is None:
            raise RuntimeError("the node is not running: start() it first")
        return self._running

    @property
    def services(self) -> Services:
        return self.running.services

    @property
    def asgi(self) -> ASGIApp:
        return self.running.asgi

    @property
    def streams(self) -> StreamServers:
        return self.running.streams

    @property
    def runner(self) -> Runner:
        return self.running.runner

    @property
    def callbacks(self) -> ResultCallbacks:
        return self.running.callbacks

    @property
    def notifier(self) -> Notifier:
        return self.running.notifier

    @property
    def jwks_refresher(self) -> Runner | None:
        return self.running.jwks_refresher

    async def _open(self, life: Lifecycle) -> Running:
        tracing = self._open_tracing(life)
        self.shards.open(life)
        await self._open_shard_process(life)
        services = self._services()
        life.on_close("task service", services.tasks.drain)
        jwks_refresher = await self._jwks_refresher(life, services.auth)
        await self._peer_readiness_refresher(life)
        maintenance = Maintenance(self.node, self.clock)
        reaper = Runner("reaper", maintenance.tick, self.clock.now_ms)
        self.node.listen("reaper", listeners.on_due(reaper.wake_by))
        await life.enter("reaper", reaper)
        if services.schedules is not None:  # fires due slots; a no-op on a non-leader
            await life.enter("schedules", Runner("schedules", services.schedules.tick, self.clock.now_ms))
        # One outbound HTTP/1.1 client for result callbacks and queue-ready notifications.
        poster = self._poster()
        life.on_close("outbound HTTP client", poster.aclose)
        callbacks = await self._callbacks(life, poster)
        notifier = await self._notifier(life, services, poster)
        self._register_gauges()
        s = self.settings
        await self._metrics_listener(life)
        asgi = build_app(
            services,
            times=TimeFormat(ZoneInfo(s.timezone)),
            max_body_bytes=s.limits.max_body_bytes,
            # With a separate metrics listener the API port no longer maps the server (issue 11).
            metrics=None if s.observability.metrics_addr else self.metrics_page,
            observer=HttpObserver(self.metrics, access_log=s.observability.access_log, tracing=tracing),
        )
        streams = StreamServers.build(
            services,
            producer_addr=s.grpc.producer_stream_addr,
            worker_addr=s.grpc.worker_stream_addr,
            limits=StreamLimits(
                max_message_bytes=s.grpc.max_message_bytes,
                hello_timeout_seconds=s.grpc.hello_timeout_seconds,
                max_concurrent_streams=s.grpc.max_concurrent_streams,
                max_unauthenticated_streams_per_connection=s.grpc.max_unauthenticated_streams,
                max_in_flight=s.grpc.max_in_flight,
                max_ready_count=s.grpc.max_ready_count,
                ready_wait_seconds=s.grpc.ready_wait_seconds,
            ),
            tls=self.tls,
            reuse_port=self.shard_process is not None,
        )
        streams.observe(StreamObserver(self.metrics, tracing))
        # Registered before starting: a second server that cannot bind still stops the first.
        life.on_close("streams", lambda: streams.stop(s.shutdown_grace_seconds))
        await streams.start()
        if self.shard_process is not None:
            await self.shard_process.balance_streams(life, streams, self.clock.now_ms)
        return Running(services, asgi, streams, reaper, callbacks, notifier, jwks_refresher)

    async def _open_shard_process(self, life: Lifecycle) -> None:
        """Serve the own shard to the other shard processes and link to theirs."""
        process = self.shard_process
        if process is None:
            return
        await process.open(life, self.shards, self.clock.now_ms)

    def _services(self) -> Services:
        s, node, clock = self.settings, self.node, self.clock
        policy = wiring.policy(s.tasks, s.limits)
        limiter = wiring.rate_limiter(s.rate_limit, clock, self.metrics)
        tasks = TaskService(node, clock, policy, limiter=limiter)
        tasks.callback_hosts = self.hosts
        return Services(
            auth=Authenticator.from_settings(s.auth, clock, dev=s.dev),
            tasks=tasks,
            results=ResultService(node, clock, policy),
            admin=AdminService(node, clock, limiter),
            ready=self._ready,
            dlq=DlqService(node, clock),
            backup=BackupService(
                self._checkpoints(),
                clock,
                enabled=s.store.provider != "memory",
                root=s.backup_root,
            ),
            subscriptions=SubscriptionService(
                node, clock, self.hosts, wiring.subscription_settings(s.subscriptions)
            ),
            topics=TopicService(node, clock, policy.max_attempts),
            schedules=ScheduleService(node, clock, policy),
            raft_status=self._raft_status,
            transfer_leader=self.shards.transfer_leader,
            membership=self._membership() if s.raft.enabled else None,
        )

    async def _jwks_refresher(self, life: Lifecycle, auth: Authenticator) -> Runner | None:
        """Keep JWKS keys fresh off the event loop, so a request waits on a fetch only for a kid
        it has never seen (spec 03 gap 3)."""
        key_sets = auth.key_sets()
        if not key_sets:
            return None
        for key_set in key_sets:
            key_set.refreshed_in_background = True

        async def tick() -> None:
            for key_set in key_sets:
                await asyncio.to_thread(key_set.refresh_if_due)

        runner = Runner("jwks-refresh", tick, self.clock.now_ms, interval_seconds=5.0)
        return await life.enter("jwks refresher", runner)

    async def _peer_readiness_refresher(self, life: Lifecycle) -> None:
        """Probe every Raft peer's /readyz in the background, for /raft/status to report."""
        topology = self.shards.topology
        if topology is None:
            return
        urls = {peer: url for peer, url in topology.peer_http.items() if peer != topology.self_id}
        if not urls:
            return
        peers = PeerReadiness(urls, timeout_seconds=PEER_READINESS_TIMEOUT_SECONDS)
        life.on_close("peer readiness client", peers.aclose)

        async def tick() -> None:
            peers.follow(topology.peer_urls())  # the members added since the start included
            await peers.tick()

        runner = Runner(
            "peer-readiness", tick, self.clock.now_ms, interval_seconds=PEER_READINESS_INTERVAL_SECONDS
        )
        await life.enter("peer readiness refresher", runner)
        self.peer_readiness = peers

    def _raft_status(self) -> list[GroupStatus]:
        """Every group with every voter: this node's readiness exactly, its peers' as probed."""
        own = self._ready()[0]
        self_id = self.settings.raft.self_id
        peers = self.peer_readiness

        def ready_of(node: str) -> bool | None:
            if node == self_id:
                return own
            return None if peers is None else peers.ready_of(node)

        return self.shards.raft_status(ready_of)

    async def _callbacks(self, life: Lifecycle, poster: Poster) -> ResultCallbacks:
        """Result callbacks: the outbox delivery runner (the task service checks hosts on create)."""
        callbacks = ResultCallbacks(
            self.node,
            self.clock,
            wiring.callback_settings(self.settings.webhooks),
            self.hosts,
            poster,
            timestamp=TimeFormat(ZoneInfo(self.settings.timezone)).timestamp,
            metrics=self.metrics,
            limiter=self.outbound,
        )
        life.on_close("result callbacks", callbacks.stop)  # abandons attempts in flight
        runner = Runner("result-callbacks", callbacks.tick, self.clock.now_ms)
        callbacks.on_settled = runner.poke
        self.node.listen("result-callbacks", listeners.on_callback_owed(runner.poke))
        await life.enter("result-callback runner", runner)
        return callbacks

    async def _notifier(self, life: Lifecycle, services: Services, poster: Poster) -> Notifier:
        """Queue-ready notifications and the subscription expiry sweep, off the request path."""
        notifier = Notifier(
            self.node,
            self.clock,
            self.hosts,
            poster,
            secret=self.settings.webhooks.hmac_secret,
            per_tenant=self.settings.webhooks.signature_per_tenant,
            metrics=self.metrics,
            limiter=self.outbound,
        )
        life.on_close("notifier", notifier.stop)
        runner = Runner("notifier", notifier.tick, self.clock.now_ms)
        notifier.on_marked = runner.poke
        self.node.listen("notifier", listeners.on_ready(notifier.ready))
        self.node.elsewhere_ready.append(notifier.ready)  # shard 0's process notifies for all
        await life.enter("notifier runner", runner)
        cleanup = Runner(
            "subscription-cleanup",
            services.subscriptions.cleanup_tick,
            self.clock.now_ms,
            interval_seconds=self.settings.subscriptions.cleanup_interval_seconds,
        )
        await life.enter("subscription cleanup", cleanup)
        return notifier

    def _membership(self) -> MembershipService:
        """Changes of this process's groups here; with a process per shard, the others' in
        the process that runs them."""
        s = self.settings
        elsewhere = self.shards.change_members_elsewhere if s.store.runs_shard_processes else None
        return MembershipService(self.shards.groups, s.raft.self_id, s.store.num_shards, elsewhere)

    def _open_tracing(self, life: Lifecycle) -> Tracing | None:
        tracing = self.tracing
        if tracing is not None:  # closed last: exports the spans of everything closing before it
            life.on_close("tracing", lambda: asyncio.to_thread(tracing.shutdown))
            from codeq.observability.task_spans import TaskSpans

            self.node.listen("task-spans", TaskSpans(tracing))
        return tracing

    def _poster(self) -> Poster:
        if self.tracing is None:
            return H1Poster()
        from codeq.observability.tracing import TracedPoster

        return TracedPoster(H1Poster(), self.tracing)

    async def _metrics_listener(self, life: Lifecycle) -> None:
        address = self.settings.observability.metrics_addr
        # With a process per shard, shard 0's process alone listens: its page merges all of them.
        if not address or (self.shard_process is not None and self.shard_process.owned != 0):
            return
        host, _, port = address.rpartition(":")
        listener = MetricsListener(self.metrics_page, host.strip("[]"), int(port))
        await listener.start()
        life.on_close("metrics listener", listener.aclose)
        self.metrics_listener = listener

    def _register_gauges(self) -> None:
        node = self.node
        self.metrics.register_ready(lambda: self._ready()[0])
        self.metrics.register_raft(self.shards.raft_states)
        self.metrics.register_queue_depth(lambda: queue_depths(node))
        self.metrics.register_waiting(lambda: len(node.waiters))
        self.metrics.register_outbox_pending(
            lambda: sum(len(shard.engine.outbox.entries) for shard in node.local_shards)
        )

    def _checkpoints(self) -> list[CheckpointFn]:
        own: list[CheckpointFn] = [committer.checkpoint for committer in self.shards.committers]
        return own if self.shard_process is None else self.shard_process.checkpoints(own[0])

    def _ready(self) -> tuple[bool, str]:
        ready, reason = self.shards.ready()
        if ready and self.shard_process is not None:
            ready, reason = self.shard_process.ready()
        if not ready:
            return ready, reason
        if self._running is None or not self._running.runner.running:
            return False, "background work is not running"
        return True, ""
