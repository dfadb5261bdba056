"""Admin routes (spec 02 §4.16–4.17; task listing, cancel and the overview of issue 14) and the
unauthenticated health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from codeq.core.errors import InvalidInput
from codeq.core.names import validate_command
from codeq.service.container import Services
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.body import decode
from codeq.transport.http.errors import json_reply
from codeq.transport.http.render import TimeFormat, parse_rfc3339_ms
from codeq.wire import http as w


class AdminRoutes:
    def __init__(
        self,
        services: Services,
        times: TimeFormat,
        max_body_bytes: int,
        metrics: Callable[[], Awaitable[tuple[bytes, str]]] | None = None,
    ) -> None:
        self.s = services
        self.times = times
        self.max_body = max_body_bytes
        self._metrics = metrics

    async def queues(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        return json_reply(await self.s.admin.queues(principal))

    async def queue_stats(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        # A name is checked like a create's: a stray one is a 400, not an empty queue (a blank
        # one keeps the reference's `command is required`).
        command = request.path_params["command"]
        if command.strip():
            command = validate_command(command)
        stats = await self.s.admin.queue_stats(principal, command)
        return json_reply(
            w.QueueStatsJSON(
                command=stats.command,
                ready=stats.ready,
                delayed=stats.delayed,
                in_progress=stats.in_progress,
                dlq=stats.dlq,
            )
        )

    async def list_tasks(self, request: Request) -> Reply:
        """`GET /admin/queues/:command/tasks?state=S&order=newest|oldest&cursor=C&limit=N`."""
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        limit_text = request.query("limit") or "0"
        if not limit_text.isdigit():
            raise InvalidInput("limit must be a non-negative integer", field="limit")
        tasks, next_cursor = await self.s.admin.tasks.page(
            principal,
            request.path_params["command"],
            request.query("state") or "",
            request.query("order") or "newest",
            request.query("cursor") or "",
            int(limit_text),
        )
        return json_reply(w.TaskPageJSON(tasks=[self.times.task(t) for t in tasks], next_cursor=next_cursor))

    async def cancel(self, request: Request) -> Reply:
        """`POST /tasks/:id/cancel`: 200 with the task (CANCELLED, or cancel requested)."""
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        task = await self.s.admin.tasks.cancel(principal, request.path_params["id"])
        return json_reply(self.times.task(task))

    async def overview(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        rows = [
            w.QueueOverviewJSON(
                command=row.command,
                ready=row.ready,
                delayed=row.delayed,
                in_progress=row.in_progress,
                dead_lettered=row.dead_lettered,
                completed_1m=row.completed_1m,
                failed_1m=row.failed_1m,
                completed_1h=row.completed_1h,
                failed_1h=row.failed_1h,
            )
            for row in await self.s.admin.overview(principal)
        ]
        return json_reply(w.OverviewJSON(queues=rows))

    async def cleanup(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        body = decode(await request.body(self.max_body), w.CleanupRequest, empty_ok=True)
        before_ms = None
        if body.before:
            before_ms = parse_rfc3339_ms(body.before, "before", "invalid 'before' (use RFC3339)")
        deleted = await self.s.admin.cleanup(principal, body.limit or 0, before_ms)
        before_text = body.before or self.times.utc_seconds(self.s.admin.clock.now_ms())
        return json_reply(w.CleanupJSON(before=before_text, deleted=deleted, limit=body.limit or 0))

    async def healthz(self, request: Request) -> Reply:
        return json_reply({"status": "ok"})

    async def readyz(self, request: Request) -> Reply:
        ready, why = self.s.ready()
        if ready:
            return json_reply({"status": "ready"})
        return json_reply({"status": "not ready", "error": why}, 503)

    async def metrics(self, request: Request) -> Reply:
        if self._metrics is None:
            return json_reply({"error": "metrics are disabled"}, 404)
        body, content_type = await self._metrics()
        return Reply(200, body, content_type=content_type.encode())
