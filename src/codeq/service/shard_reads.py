"""The reads the services make of one shard's engine, by name, so that each runs where its
shard lives: directly on a shard this process owns, or in the process that owns it (ADR 0009).

Arguments are plain values (they cross the channel as msgpack); `answer` is the type the
caller decodes the answer as.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codeq.core.errors import NotFound
from codeq.core.model import ResultRecord, Task
from codeq.core.schedules import Schedule
from codeq.core.topics import Topic
from codeq.engine import dlq, listing, schedules
from codeq.engine.engine import Engine
from codeq.engine.subscriptions import Subscription

Entry = tuple[int, int, str]


@dataclass(slots=True)
class QueueOverview:
    """One command of a tenant: its live counts now, and its finishes of the last minute and hour."""

    command: str
    ready: int = 0
    delayed: int = 0
    in_progress: int = 0
    dead_lettered: int = 0
    completed_1m: int = 0
    failed_1m: int = 0
    completed_1h: int = 0
    failed_1h: int = 0


@dataclass(frozen=True, slots=True)
class ShardRead:
    run: Callable[..., Any]  # (engine, *arguments) -> answer
    answer: Any


def _queue_counts(engine: Engine, tenant: str, key: str) -> tuple[int, int, int, int]:
    index = engine.index
    queue = index.queues.get((tenant, key))
    dlq_count = index.dlq_counts.get((tenant, key), 0)
    if queue is None:
        return (0, 0, 0, dlq_count)
    return (queue.ready, queue.delayed, queue.in_progress, dlq_count)


def _list_page(engine: Engine, *query_fields: Any) -> list[tuple[Entry, Task]]:
    """`query_fields`: a `listing.PageQuery`'s, in order (its `after` arrives as a list)."""
    tenant, key, state, after, newest, limit = query_fields
    query = listing.PageQuery(tenant, key, state, tuple(after) if after else None, newest, limit)
    if query.state in listing.LIVE_STATES:
        entries = engine.index.listed(query)
        tasks = engine.live_tasks([entry[2] for entry in entries])  # read from the store (issue 18)
        return list(zip(entries, tasks, strict=True))
    found: list[tuple[Entry, Task]] = []
    for entry in listing.finished_page(engine.store, query):
        try:
            found.append((entry, engine.find_task(entry[2], query.tenant)))
        except NotFound:  # removed since the index entry was read: skip it
            continue
    return found


def _queue_labels(engine: Engine, tenant: str) -> dict[str, int]:
    """The reference's queue labels of `tenant` on this shard, non-empty ones only."""
    labels: dict[str, int] = {}

    def add(label: str, count: int) -> None:
        if count:
            labels[label] = labels.get(label, 0) + count

    index = engine.index
    for key, queue in index.by_tenant.get(tenant, {}).items():
        base = f"codeq:q:{key}:{tenant}"
        for priority, count in enumerate(queue.ready_by_priority):
            add(f"{base}:pending:{priority}", count)
        add(f"{base}:inprog", queue.in_progress)
        add(f"{base}:delayed", queue.delayed)
    for (owner, key), count in index.dlq_counts.items():
        if owner == tenant:
            add(f"codeq:q:{key}:{tenant}:dlq", count)
    return labels


def _overview(engine: Engine, tenant: str, now_ms: int) -> list[QueueOverview]:
    found: dict[str, QueueOverview] = {}
    index = engine.index
    for key, queue in index.by_tenant.get(tenant, {}).items():
        row = found.setdefault(key, QueueOverview(key))
        row.ready += queue.ready
        row.delayed += queue.delayed
        row.in_progress += queue.in_progress
    for (owner, key), count in index.dlq_counts.items():
        if owner == tenant and count:
            found.setdefault(key, QueueOverview(key)).dead_lettered += count
    for key in engine.throughput.commands(tenant):
        row = found.setdefault(key, QueueOverview(key))
        completed_1m, failed_1m, completed_1h, failed_1h = engine.throughput.window(tenant, key, now_ms)
        row.completed_1m += completed_1m
        row.failed_1m += failed_1m
        row.completed_1h += completed_1h
        row.failed_1h += failed_1h
    return list(found.values())


READS: dict[str, ShardRead] = {
    "find_task": ShardRead(lambda e, task_id, tenant: e.find_task(task_id, tenant), Task),
    "find_result": ShardRead(lambda e, task_id: e.find_result(task_id), ResultRecord | None),
    "idempotent_task_id": ShardRead(
        lambda e, tenant, key, now_ms: e.idempotent_task_id(tenant, key, now_ms), str
    ),
    "queue_counts": ShardRead(_queue_counts, tuple[int, int, int, int]),
    "list_page": ShardRead(_list_page, list[tuple[Entry, Task]]),
    "dlq_page": ShardRead(
        lambda e, tenant, name, after, limit: dlq.page(e.store, tenant, name, after, limit), list[Task]
    ),
    "queue_labels": ShardRead(_queue_labels, dict[str, int]),
    "overview": ShardRead(_overview, list[QueueOverview]),
    "find_topic": ShardRead(lambda e, tenant, name: e.find_topic(tenant, name), Topic | None),
    "find_schedule": ShardRead(
        lambda e, tenant, name: schedules.find(e.store, tenant, name), Schedule | None
    ),
    "schedules": ShardRead(lambda e, tenant: schedules.listed(e.store, tenant), list[Schedule]),
    "subscriptions_of": ShardRead(
        lambda e, tenant, subject, now_ms: e.subscriptions.owned_by(tenant, subject, now_ms),
        list[Subscription],
    ),
    "find_subscription": ShardRead(
        lambda e, sub_id, tenant, subject, now_ms: e.subscriptions.find(sub_id, tenant, subject, now_ms),
        Subscription,
    ),
}
