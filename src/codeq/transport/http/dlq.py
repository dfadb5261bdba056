"""Dead-letter admin routes (beyond the reference, spec 02 gap 11): list, requeue, purge."""

from __future__ import annotations

from codeq.core.errors import InvalidInput
from codeq.service.container import Services
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.body import decode
from codeq.transport.http.errors import json_reply
from codeq.transport.http.render import TimeFormat
from codeq.wire import http as w


class DlqRoutes:
    def __init__(self, services: Services, times: TimeFormat, max_body_bytes: int) -> None:
        self.s = services
        self.times = times
        self.max_body = max_body_bytes

    async def list(self, request: Request) -> Reply:
        """`GET /admin/dlq/:command?limit=N&after=<task id>`."""
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        command = request.path_params["command"]
        limit_text = request.query("limit") or "0"
        if not limit_text.isdigit():
            raise InvalidInput("limit must be a non-negative integer", field="limit")
        tasks, next_after = await self.s.dlq.page(
            principal, command, request.query("after") or "", int(limit_text)
        )
        page = w.DlqPageJSON(
            command=command.strip(), tasks=[self.times.task(t) for t in tasks], next_after=next_after
        )
        return json_reply(page)

    async def requeue(self, request: Request) -> Reply:
        """`POST /admin/dlq/:command/requeue` with `{"taskIds": [...]}` or `{"all": true}`."""
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        body = decode(await request.body(self.max_body), w.DlqActionRequest)
        command = request.path_params["command"]
        count = await self.s.dlq.requeue(principal, command, body.task_ids or [], bool(body.all))
        return json_reply(w.DlqActionJSON(command=command.strip(), requeued=count))

    async def purge(self, request: Request) -> Reply:
        """`POST /admin/dlq/:command/purge` with `{"taskIds": [...]}` or `{"all": true}`."""
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        body = decode(await request.body(self.max_body), w.DlqActionRequest)
        command = request.path_params["command"]
        count = await self.s.dlq.purge(principal, command, body.task_ids or [], bool(body.all))
        return json_reply(w.DlqActionJSON(command=command.strip(), purged=count))
