"""The Prometheus metrics: the reference's names (spec 04 §6) plus storage, HTTP, gRPC and Raft."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from codeq.core.model import Task
from codeq.observability.collectors import (
    DepthRow,
    DepthSource,
    QueueDepthCollector,
    RaftCollector,
    RaftGroupState,
    RaftSource,
)
from codeq.observability.http_stats import RequestStats
from codeq.observability.series import DEFAULT_MAX_SERIES, OTHER, CappedCounter, CappedHistogram, cap_series
from codeq.observability.task_stats import TaskStats

__all__ = ["OTHER", "DepthRow", "DepthSource", "Metrics", "RaftGroupState", "cap_series"]

PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
COMMIT_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
COMMIT_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RAFT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
QUEUE_DEPTH_SERIES_CAP = DEFAULT_MAX_SERIES


class Metrics:
    """Every metric codeq exports, on one registry (injected, or a fresh one per instance).

    `max_series` bounds every labelled metric (series.py); `tenant_labels` lets tenant names
    into labels (queue depth), off by default.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        tenant_labels: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.max_series = max_series
        self.tenant_labels = tenant_labels
        self._children: dict[tuple[object, ...], Any] = {}
        self._tasks_and_webhooks()
        self._storage_and_http()
        self._grpc_and_raft()
        self._queue_depth = QueueDepthCollector(max_series, tenant_labels)
        self.registry.register(self._queue_depth)
        self._raft = RaftCollector()
        self.registry.register(self._raft)

    def _counter(self, name: str, help_text: str, labels: list[str]) -> CappedCounter:
        return CappedCounter(name, help_text, labels, registry=self.registry, max_series=self.max_series)

    def _histogram(
        self, name: str, help_text: str, labels: list[str], buckets: tuple[float, ...]
    ) -> CappedHistogram:
        return CappedHistogram(
            name, help_text, labels, buckets=buckets, registry=self.registry, max_series=self.max_series
        )

    def _tasks_and_webhooks(self) -> None:
        # codeq_task_created_total, _claimed_total, _completed_total, codeq_lease_expired_total
        # and codeq_task_processing_latency_seconds: recorded per event, so without locks.
        self.tasks = TaskStats(PROCESSING_BUCKETS, self.max_series)
        self.registry.register(self.tasks)
        self.webhook_deliveries = self._counter(
            "codeq_webhook_deliveries_total", "Outbound webhook deliveries.", ["kind", "command", "outcome"]
        )
        # Beyond the reference: every attempt (retries included), to see a struggling receiver.
        self.webhook_attempts = self._counter(
            "codeq_webhook_attempts_total",
            "Outbound webhook attempts, retries included.",
            ["kind", "outcome"],
        )
        self.rate_limit_hits = self._counter(
            "codeq_rate_limit_hits_total", "Requests denied by a rate limit.", ["scope", "operation"]
        )
        self.event_listener_errors = self._counter(
            "codeq_event_listener_errors_total",
            "Event listeners that raised (logged and contained; the write stood).",
            ["listener"],
        )

    def _storage_and_http(self) -> None:
        self.commit_batch_size = self._histogram(
            "codeq_commit_batch_size",
            "Commands merged into one group commit.",
            ["shard"],
            COMMIT_BATCH_BUCKETS,
        )
        self.commit_latency = self._histogram(
            "codeq_commit_latency_seconds",
            "Time to write and sync (fsync, when on) one group commit.",
            ["shard"],
            COMMIT_LATENCY_BUCKETS,
        )
        self.http_requests = RequestStats(HTTP_BUCKETS, self.max_series)
        self.registry.register(self.http_requests)

    def _grpc_and_raft(self) -> None:
        self.grpc_messages = self._counter(
            "codeq_grpc_messages_received_total",
            "gRPC stream messages received, by stream and message kind (a batch counts once).",
            ["stream", "kind"],
        )
        self.grpc_message_duration = self._histogram(
            "codeq_grpc_message_duration_seconds",
            "Time to handle one received gRPC message (a batch counts once).",
            ["stream", "kind"],
            HTTP_BUCKETS,
        )
        self.raft_commit_latency = self._histogram(
            "codeq_raft_commit_latency_seconds",
            "From proposing a log entry to learning it is committed (and applied) here.",
            ["group"],
            RAFT_BUCKETS,
        )
        self.raft_apply_latency = self._histogram(
            "codeq_raft_apply_latency_seconds",
            "Time to apply one committed log entry on this node.",
            ["group"],
            RAFT_BUCKETS,
        )
        self.raft_entry_commands = self._histogram(
            "codeq_raft_entry_commands",
            "Commands merged into one Raft log entry.",
            ["group"],
            COMMIT_BATCH_BUCKETS,
        )

    # -- recording helpers used by the node and the transports ------------------------------

    def _child(self, metric: CappedCounter | CappedHistogram, *labels: str) -> Any:
        """`metric.labels(...)`, cached: label lookup is the costly part on the hot path."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < 16 * self.max_series:  # folded names must not grow the cache
                self._children[key] = child
        return child

    def record_listener_error(self, listener: str) -> None:
        self._child(self.event_listener_errors, listener).inc()

    def record_task_event(self, kind: str, task: Task) -> None:
        """`kind` is created, claimed or lease_expired (engine `TaskEvent`); others are ignored."""
        self.tasks.event(kind, task.command)

    def record_finished(self, task: Task) -> None:
        """Every terminal transition, counted once, whatever caused it (spec 04 gap 10)."""
        seconds = None
        if task.created_ms and task.finished_ms >= task.created_ms:
            seconds = (task.finished_ms - task.created_ms) / 1000
        self.tasks.finished(task.command, task.status, seconds)

    def observe_commit(self, shard: str, commands: int, seconds: float) -> None:
        self._child(self.commit_batch_size, shard).observe(commands)
        self._child(self.commit_latency, shard).observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.observe(route, method, status, seconds)

    def grpc_recorder(self, stream: str, kind: str) -> Callable[[float], None]:
        """Records one received stream message of `kind` and the seconds it took: its two
        children bound once per (stream, kind)."""
        count = self._child(self.grpc_messages, stream, kind)
        duration = self._child(self.grpc_message_duration, stream, kind)

        def record(seconds: float) -> None:
            count.inc()
            duration.observe(seconds)

        return record

    def observe_raft_commit(self, group: str, commands: int, seconds: float) -> None:
        self._child(self.raft_commit_latency, group).observe(seconds)
        self._child(self.raft_entry_commands, group).observe(commands)

    def observe_raft_apply(self, group: str, seconds: float) -> None:
        self._child(self.raft_apply_latency, group).observe(seconds)

    def register_waiting(self, fn: Callable[[], int]) -> None:
        """`codeq_long_polls_waiting`: requests parked in a long-poll claim or result read."""
        self._function_gauge("codeq_long_polls_waiting", "Long-poll requests currently waiting.", fn)

    def register_outbox_pending(self, fn: Callable[[], int]) -> None:
        """`codeq_webhook_outbox_pending`: result callbacks owed and not yet delivered."""
        self._function_gauge(
            "codeq_webhook_outbox_pending",
            "Result callbacks in the outbox, waiting for delivery or a retry.",
            fn,
        )

    def register_ready(self, fn: Callable[[], bool]) -> None:
        """`codeq_ready`: 1 while `/readyz` would answer ready, for the readiness alert."""
        self._function_gauge("codeq_ready", "1 when this node is ready to serve (as /readyz).", fn)

    def _function_gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        gauge = Gauge(name, help_text, registry=self.registry)
        gauge.set_function(lambda: float(fn()))

    def register_queue_depth(self, fn: DepthSource) -> None:
        """Read queue depths from `fn` at every scrape; a later call replaces the earlier source."""
        self._queue_depth.source = fn

    def register_raft(self, fn: RaftSource) -> None:
        """Read the Raft groups' state from `fn` at every scrape."""
        self._raft.source = fn

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for `GET /metrics`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
