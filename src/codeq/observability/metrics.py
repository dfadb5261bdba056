"""The Prometheus metrics: the reference's names (spec 04 §6) plus storage, HTTP and queue depth."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from codeq.core.model import Task

log = logging.getLogger("codeq.metrics")

PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
COMMIT_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
COMMIT_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
QUEUE_DEPTH_SERIES_CAP = 1000
OTHER = "_other"

DepthRow = tuple[str, str, str, int]  # (tenant, command, queue, count)
DepthSource = Callable[[], Iterable[DepthRow]]


class Metrics:
    """Every metric codeq exports, on one registry (injected, or a fresh one per instance)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[object, ...], Any] = {}
        r = self.registry
        self.task_created = Counter(
            "codeq_task_created_total",
            "Tasks enqueued (idempotent replays excluded).",
            ["command"],
            registry=r,
        )
        self.task_claimed = Counter("codeq_task_claimed_total", "Tasks claimed.", ["command"], registry=r)
        self.task_completed = Counter(
            "codeq_task_completed_total",
            "Tasks that reached a terminal state.",
            ["command", "status"],
            registry=r,
        )
        self.task_processing_latency = Histogram(
            "codeq_task_processing_latency_seconds",
            "From creation to the terminal state.",
            ["command", "status"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.lease_expired = Counter(
            "codeq_lease_expired_total", "Leases that expired.", ["command"], registry=r
        )
        self.webhook_deliveries = Counter(
            "codeq_webhook_deliveries_total",
            "Outbound webhook deliveries.",
            ["kind", "command", "outcome"],
            registry=r,
        )
        # Beyond the reference: every attempt (retries included), to see a struggling receiver.
        self.webhook_attempts = Counter(
            "codeq_webhook_attempts_total",
            "Outbound webhook attempts, retries included.",
            ["kind", "outcome"],
            registry=r,
        )
        self.rate_limit_hits = Counter(
            "codeq_rate_limit_hits_total",
            "Requests denied by a rate limit.",
            ["scope", "operation"],
            registry=r,
        )
        self._storage_and_http(r)
        self._queue_depth = _QueueDepthCollector()
        r.register(self._queue_depth)

    def _storage_and_http(self, r: CollectorRegistry) -> None:
        self.commit_batch_size = Histogram(
            "codeq_commit_batch_size",
            "Commands merged into one group commit.",
            ["shard"],
            buckets=COMMIT_BATCH_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "codeq_commit_latency_seconds",
            "Time to write and sync one group commit.",
            ["shard"],
            buckets=COMMIT_LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "codeq_http_requests_total", "HTTP requests answered.", ["route", "method", "status"], registry=r
        )
        self.event_listener_errors = Counter(
            "codeq_event_listener_errors_total",
            "Event listeners that raised (logged and contained; the write stood).",
            ["listener"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "codeq_http_request_duration_seconds",
            "HTTP request handling time.",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )

    # -- recording helpers used by the node and the transports ------------------------------

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """`metric.labels(...)`, cached: label lookup is the costly part on the hot path."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record_listener_error(self, listener: str) -> None:
        self._child(self.event_listener_errors, listener).inc()

    def record_task_event(self, kind: str, task: Task) -> None:
        """`kind` is created, claimed or lease_expired (engine `TaskEvent`)."""
        if kind == "created":
            self._child(self.task_created, task.command).inc()
        elif kind == "claimed":
            self._child(self.task_claimed, task.command).inc()
        elif kind == "lease_expired":
            self._child(self.lease_expired, task.command).inc()

    def record_finished(self, task: Task) -> None:
        """Every terminal transition, counted once, whatever caused it (spec 04 gap 10)."""
        status = task.status.value
        self._child(self.task_completed, task.command, status).inc()
        if task.created_ms and task.finished_ms >= task.created_ms:
            seconds = (task.finished_ms - task.created_ms) / 1000
            self._child(self.task_processing_latency, task.command, status).observe(seconds)

    def observe_commit(self, shard: str, commands: int, seconds: float) -> None:
        self.commit_batch_size.labels(shard).observe(commands)
        self.commit_latency.labels(shard).observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_request_duration.labels(route, method).observe(seconds)

    def register_waiting(self, fn: Callable[[], int]) -> None:
        """`codeq_long_polls_waiting`: requests parked in a long-poll claim or result read."""
        gauge = Gauge(
            "codeq_long_polls_waiting", "Long-poll requests currently waiting.", registry=self.registry
        )
        gauge.set_function(lambda: float(fn()))

    def register_outbox_pending(self, fn: Callable[[], int]) -> None:
        """`codeq_webhook_outbox_pending`: result callbacks owed and not yet delivered."""
        gauge = Gauge(
            "codeq_webhook_outbox_pending",
            "Result callbacks in the outbox, waiting for delivery or a retry.",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(fn()))

    def register_queue_depth(self, fn: DepthSource) -> None:
        """Read queue depths from `fn` at every scrape; a later call replaces the earlier source."""
        self._queue_depth.source = fn

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for `GET /metrics`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _QueueDepthCollector(Collector):
    """`codeq_queue_depth{tenant,command,queue}` computed at scrape time from in-memory counters."""

    def __init__(self) -> None:
        self.source: DepthSource | None = None

    def describe(self) -> Iterable[Metric]:
        return [self._family({})]

    def collect(self) -> Iterator[Metric]:
        totals: dict[tuple[str, str, str], int] = {}
        if self.source is not None:
            try:
                for tenant, command, queue, count in self.source():
                    key = (tenant, command, queue)
                    totals[key] = totals.get(key, 0) + count  # shards report the same queue apart
            except Exception:
                # A failing source must not break the whole scrape.
                log.exception("queue depth collection failed")
                totals = {}
        yield self._family(cap_series(totals, QUEUE_DEPTH_SERIES_CAP))

    @staticmethod
    def _family(rows: dict[tuple[str, str, str], int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "codeq_queue_depth", "Tasks per tenant, command and queue.", labels=["tenant", "command", "queue"]
        )
        for labels, count in rows.items():
            family.add_metric(labels, count)
        return family


def cap_series(rows: dict[tuple[str, str, str], int], cap: int) -> dict[tuple[str, str, str], int]:
    """At most `cap` series: beyond it, the tail (in label order) folds into tenant "_other".

    Label order keeps the choice stable between scrapes. If even the folded series would not
    fit, commands fold too, leaving one series per queue.
    """
    if len(rows) <= cap:
        return rows
    keys = sorted(rows)
    # folded[i] = distinct (command, queue) among keys[i:], i.e. series the tail folds into.
    folded = [0] * (len(keys) + 1)
    seen: set[tuple[str, str]] = set()
    for i in range(len(keys) - 1, -1, -1):
        seen.add(keys[i][1:])
        folded[i] = len(seen)
    kept = 0
    while kept < len(keys) and kept + 1 + folded[kept + 1] <= cap:
        kept += 1
    capped = {key: rows[key] for key in keys[:kept]}
    fold_commands = kept + folded[kept] > cap
    for tenant_command_queue in keys[kept:]:
        _, command, queue = tenant_command_queue
        key = (OTHER, OTHER if fold_commands else command, queue)
        capped[key] = capped.get(key, 0) + rows[tenant_command_queue]
    return capped
