"""Admin calls: queue statistics and overview, task listing and cancel, dead-letter tools, topics,
schedules, cleanup, online backups, and the caller's subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import msgspec

from codeq.client._http import HttpTransport
from codeq.client._json import task_from_wire
from codeq.client._loop import BlockingClient, LoopThread
from codeq.client._models import Task
from codeq.client._tokens import Token
from codeq.wire import http as w

_encode = msgspec.json.Encoder().encode
_stats = msgspec.json.Decoder(w.QueueStatsJSON).decode
_page = msgspec.json.Decoder(w.DlqPageJSON).decode
_action = msgspec.json.Decoder(w.DlqActionJSON).decode
_backup = msgspec.json.Decoder(w.BackupJSON).decode
_task = msgspec.json.Decoder(w.TaskJSON).decode
_task_page = msgspec.json.Decoder(w.TaskPageJSON).decode
_overview = msgspec.json.Decoder(w.OverviewJSON).decode
_subscriptions = msgspec.json.Decoder(w.SubscriptionListJSON).decode
_subscription_detail = msgspec.json.Decoder(w.SubscriptionDetailJSON).decode
_any = msgspec.json.decode
_subscription = msgspec.json.Decoder(w.SubscriptionJSON).decode


@dataclass(frozen=True, slots=True)
class Subscription:
    """A queue-ready notification subscription: renew it before `expires_at` (RFC 3339)."""

    subscription_id: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class QueueStats:
    command: str
    ready: int
    delayed: int
    in_progress: int
    dlq: int


@dataclass(frozen=True, slots=True)
class DlqPage:
    """Dead-lettered tasks in id order; pass `next_after` as `after` for the next page ("" at the end)."""

    tasks: list[Task]
    next_after: str


@dataclass(frozen=True, slots=True)
class TaskPage:
    """A page of one command's tasks in one state; pass `next_cursor` as `cursor` for the next
    page ("" at the end)."""

    tasks: list[Task]
    next_cursor: str


@dataclass(frozen=True, slots=True)
class QueueOverview:
    """One command of your tenant: live counts now, finishes in the last minute and hour."""

    command: str
    ready: int
    delayed: int
    in_progress: int
    dead_lettered: int
    completed_1m: int
    failed_1m: int
    completed_1h: int
    failed_1h: int


class AsyncAdmin:
    """Admin routes of one codeq server (asyncio); `token` must be an admin producer token.

    Errors are `codeq.client.CodeqError` subclasses. No retries: these are operator
    actions, and the caller sees every failure.
    """

    def __init__(self, base_url: str, token: Token, *, timeout: float = 60.0) -> None:
        self._http = HttpTransport(base_url, token, timeout=timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def queue_stats(self, command: str) -> QueueStats:
        s = _stats((await self._send("GET", f"/admin/queues/{_seg(command)}")).body)
        return QueueStats(s.command, s.ready, s.delayed, s.in_progress, s.dlq)

    async def queues(self) -> dict[str, int]:
        """Non-empty buckets of your tenant, by the reference's labels."""
        labels: dict[str, int] = _any((await self._send("GET", "/admin/queues")).body)
        return labels

    async def list_tasks(
        self, command: str, *, state: str = "ready", order: str = "newest", cursor: str = "", limit: int = 50
    ) -> TaskPage:
        """Tasks of `command` in `state` (ready, delayed, in_progress, completed, failed,
        dead_lettered, cancelled), `newest` or `oldest` first."""
        params = {
            "state": state,
            "order": order,
            "limit": str(limit),
            **({"cursor": cursor} if cursor else {}),
        }
        reply = await self._send("GET", f"/admin/queues/{_seg(command)}/tasks", params=params)
        page = _task_page(reply.body)
        return TaskPage([task_from_wire(t) for t in page.tasks], page.next_cursor)

    async def cancel(self, task_id: str) -> Task:
        """Cancel a task: CANCELLED at once when waiting; when leased, `cancel_requested` until
        its worker's next call. Cancelling again is harmless; a finished task is `Conflict`."""
        return task_from_wire(_task((await self._send("POST", f"/tasks/{_seg(task_id)}/cancel")).body))

    async def overview(self) -> list[QueueOverview]:
        """Every command of your tenant with its counts, by name."""
        rows = _overview((await self._send("GET", "/admin/overview")).body).queues
        return [_queue_overview(r) for r in rows]

    async def dlq_list(self, command: str, *, limit: int = 50, after: str = "") -> DlqPage:
        params = {"limit": str(limit), **({"after": after} if after else {})}
        reply = await self._send("GET", f"/admin/dlq/{_seg(command)}", params=params)
        page = _page(reply.body)
        return DlqPage([task_from_wire(t) for t in page.tasks], page.next_after)

    async def dlq_requeue(self, command: str, task_ids: list[str] | None = None, *, all: bool = False) -> int:
        """Put dead-lettered tasks back to PENDING with attempts reset; returns how many."""
        body = w.DlqActionRequest(task_ids=task_ids or None, all=all or None)
        reply = await self._send("POST", f"/admin/dlq/{_seg(command)}/requeue", _encode(body))
        return _action(reply.body).requeued or 0

    async def dlq_purge(self, command: str, task_ids: list[str] | None = None, *, all: bool = False) -> int:
        """Delete dead-lettered tasks and their results; returns how many."""
        body = w.DlqActionRequest(task_ids=task_ids or None, all=all or None)
        reply = await self._send("POST", f"/admin/dlq/{_seg(command)}/purge", _encode(body))
        return _action(reply.body).purged or 0

    async def topic_put(self, name: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Create or update a topic of your tenant (spec 02 §4.15); returns the stored topic."""
        topic: dict[str, Any] = _any(
            (await self._send("PUT", f"/admin/topics/{_seg(name)}", _encode(policy))).body
        )
        return topic

    async def topic_get(self, name: str) -> dict[str, Any]:
        topic: dict[str, Any] = _any((await self._send("GET", f"/admin/topics/{_seg(name)}")).body)
        return topic

    async def topic_delete(self, name: str) -> None:
        await self._send("DELETE", f"/admin/topics/{_seg(name)}", params={"deletionPolicy": "Delete"})

    async def schedule_put(self, name: str, schedule: dict[str, Any]) -> dict[str, Any]:
        """Create or update a schedule of your tenant: `command`, `payload`, and `cron` (with
        `timezone`) or `everySeconds`; optional `priority`, `maxAttempts`, `jitterSeconds`,
        `catchUp` (`skip` or `once`). Returns the stored schedule."""
        reply = await self._send("PUT", f"/admin/schedules/{_seg(name)}", _encode(schedule))
        stored: dict[str, Any] = _any(reply.body)
        return stored

    async def schedule_get(self, name: str) -> dict[str, Any]:
        stored: dict[str, Any] = _any((await self._send("GET", f"/admin/schedules/{_seg(name)}")).body)
        return stored

    async def schedule_list(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = _any((await self._send("GET", "/admin/schedules")).body)["schedules"]
        return listed

    async def schedule_delete(self, name: str) -> None:
        await self._send("DELETE", f"/admin/schedules/{_seg(name)}")

    async def cleanup(self, *, limit: int = 0, before: str = "") -> int:
        """Delete finished tasks whose retention ended by `before` (RFC 3339; default now)."""
        body: dict[str, Any] = {"limit": limit} if limit else {}
        if before:
            body["before"] = before
        deleted: int = _any((await self._send("POST", "/admin/tasks/cleanup", _encode(body))).body)["deleted"]
        return deleted

    async def subscribe(
        self,
        callback_url: str,
        *,
        event_types: list[str] | None = None,
        ttl_seconds: int | None = None,
        delivery_mode: str | None = None,
        group_id: str | None = None,
        min_interval_seconds: int | None = None,
    ) -> Subscription:
        """Have `callback_url` notified when tasks of `event_types` become ready. The routes
        are a worker's (`/workers/subscriptions`): this client's token must be a worker token
        with the scope `codeq:subscribe`."""
        body = w.SubscriptionRequest(
            callback_url=callback_url,
            event_types=event_types,
            ttl_seconds=ttl_seconds,
            delivery_mode=delivery_mode,
            group_id=group_id,
            min_interval_seconds=min_interval_seconds,
        )
        return _subscription_from((await self._send("POST", "/workers/subscriptions", _encode(body))).body)

    async def renew_subscription(self, subscription_id: str, ttl_seconds: int | None = None) -> Subscription:
        body = _encode(w.SubscriptionHeartbeatRequest(ttl_seconds=ttl_seconds))
        path = f"/workers/subscriptions/{_seg(subscription_id)}/heartbeat"
        return _subscription_from((await self._send("POST", path, body)).body)

    async def unsubscribe(self, subscription_id: str) -> None:
        await self._send("DELETE", f"/workers/subscriptions/{_seg(subscription_id)}")

    async def backup(self, dest: str, shard: int | None = None) -> w.BackupJSON:
        """Have the server write a consistent checkpoint of its stores (or of one shard) to
        `dest` on the server's own disk, while it keeps serving."""
        body = _encode(w.BackupRequest(dest=dest, shard=shard))
        return _backup((await self._send("POST", "/admin/backup", body)).body)

    async def subscriptions(self) -> list[w.SubscriptionDetailJSON]:
        """The live queue-ready subscriptions this token's subject made, in id order."""
        return _subscriptions((await self._send("GET", "/workers/subscriptions")).body).subscriptions

    async def subscription(self, subscription_id: str) -> w.SubscriptionDetailJSON:
        """One of them; `NotFound` if it expired, was deleted, or is someone else's."""
        return _subscription_detail(
            (await self._send("GET", f"/workers/subscriptions/{_seg(subscription_id)}")).body
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(
        self, method: str, path: str, body: bytes | None = None, *, params: dict[str, str] | None = None
    ) -> Any:
        return await self._http._send(method, path, body, params=params)  # the transport's own request path


class Admin(BlockingClient[AsyncAdmin]):
    """The blocking twin of `AsyncAdmin` (it runs one on a private event loop thread)."""

    def __init__(self, base_url: str, token: Token, *, timeout: float = 60.0) -> None:
        self._loop = LoopThread("codeq-admin")
        self._async = AsyncAdmin(base_url, token, timeout=timeout)

    def queue_stats(self, command: str) -> QueueStats:
        return self._loop.run(self._async.queue_stats(command))

    def queues(self) -> dict[str, int]:
        return self._loop.run(self._async.queues())

    def list_tasks(
        self, command: str, *, state: str = "ready", order: str = "newest", cursor: str = "", limit: int = 50
    ) -> TaskPage:
        return self._loop.run(
            self._async.list_tasks(command, state=state, order=order, cursor=cursor, limit=limit)
        )

    def cancel(self, task_id: str) -> Task:
        return self._loop.run(self._async.cancel(task_id))

    def overview(self) -> list[QueueOverview]:
        return self._loop.run(self._async.overview())

    def dlq_list(self, command: str, *, limit: int = 50, after: str = "") -> DlqPage:
        return self._loop.run(self._async.dlq_list(command, limit=limit, after=after))

    def dlq_requeue(self, command: str, task_ids: list[str] | None = None, *, all: bool = False) -> int:
        return self._loop.run(self._async.dlq_requeue(command, task_ids, all=all))

    def dlq_purge(self, command: str, task_ids: list[str] | None = None, *, all: bool = False) -> int:
        return self._loop.run(self._async.dlq_purge(command, task_ids, all=all))

    def topic_put(self, name: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self._loop.run(self._async.topic_put(name, policy))

    def topic_get(self, name: str) -> dict[str, Any]:
        return self._loop.run(self._async.topic_get(name))

    def topic_delete(self, name: str) -> None:
        self._loop.run(self._async.topic_delete(name))

    def schedule_put(self, name: str, schedule: dict[str, Any]) -> dict[str, Any]:
        return self._loop.run(self._async.schedule_put(name, schedule))

    def schedule_get(self, name: str) -> dict[str, Any]:
        return self._loop.run(self._async.schedule_get(name))

    def schedule_list(self) -> list[dict[str, Any]]:
        return self._loop.run(self._async.schedule_list())

    def schedule_delete(self, name: str) -> None:
        self._loop.run(self._async.schedule_delete(name))

    def cleanup(self, *, limit: int = 0, before: str = "") -> int:
        return self._loop.run(self._async.cleanup(limit=limit, before=before))

    def backup(self, dest: str, shard: int | None = None) -> w.BackupJSON:
        return self._loop.run(self._async.backup(dest, shard))

    def subscriptions(self) -> list[w.SubscriptionDetailJSON]:
        return self._loop.run(self._async.subscriptions())

    def subscription(self, subscription_id: str) -> w.SubscriptionDetailJSON:
        return self._loop.run(self._async.subscription(subscription_id))

    def subscribe(self, callback_url: str, **options: Any) -> Subscription:
        """See `AsyncAdmin.subscribe` (same keywords)."""
        return self._loop.run(self._async.subscribe(callback_url, **options))

    def renew_subscription(self, subscription_id: str, ttl_seconds: int | None = None) -> Subscription:
        return self._loop.run(self._async.renew_subscription(subscription_id, ttl_seconds))

    def unsubscribe(self, subscription_id: str) -> None:
        self._loop.run(self._async.unsubscribe(subscription_id))


def _subscription_from(body: bytes) -> Subscription:
    answer = _subscription(body)
    return Subscription(answer.subscription_id, answer.expires_at)


def _queue_overview(r: w.QueueOverviewJSON) -> QueueOverview:
    return QueueOverview(
        r.command, r.ready, r.delayed, r.in_progress, r.dead_lettered,
        r.completed_1m, r.failed_1m, r.completed_1h, r.failed_1h,
    )  # fmt: skip


def _seg(text: str) -> str:
    return quote(text, safe="")
