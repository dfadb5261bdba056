"""The HTTP application: the one route table, middleware and error handlers."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeq.core.errors import CodeqError
from codeq.service.container import Services
from codeq.transport.http import errors
from codeq.transport.http.admin import AdminRoutes
from codeq.transport.http.render import TimeFormat
from codeq.transport.http.tasks import TaskRoutes

PREFIX = "/v1/codeq"


def build_app(
    services: Services,
    *,
    times: TimeFormat | None = None,
    max_body_bytes: int = 1 << 20,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
) -> ASGIApp:
    times = times or TimeFormat()
    t = TaskRoutes(services, times, max_body_bytes)
    a = AdminRoutes(services, times, max_body_bytes, metrics)
    routes = [
        Route(f"{PREFIX}/tasks", t.create, methods=["POST"]),  # 1
        Route(f"{PREFIX}/tasks/batch", t.create_batch, methods=["POST"]),  # 2
        Route(f"{PREFIX}/tasks/claim", t.claim, methods=["POST"]),  # 3
        Route(f"{PREFIX}/tasks/claim/batch", t.claim_batch, methods=["POST"]),  # 4
        Route(f"{PREFIX}/tasks/batch/results", t.submit_results, methods=["POST"]),  # 9
        Route(f"{PREFIX}/tasks/{{id}}/heartbeat", t.heartbeat, methods=["POST"]),  # 5
        Route(f"{PREFIX}/tasks/{{id}}/abandon", t.abandon, methods=["POST"]),  # 6
        Route(f"{PREFIX}/tasks/{{id}}/nack", t.nack, methods=["POST"]),  # 7
        Route(f"{PREFIX}/tasks/{{id}}/result", t.submit_result, methods=["POST"]),  # 8
        Route(f"{PREFIX}/tasks/{{id}}/result", t.get_result, methods=["GET"]),  # 13
        Route(f"{PREFIX}/tasks/{{id}}", t.get_task, methods=["GET"]),  # 12
        Route(f"{PREFIX}/admin/queues", a.queues, methods=["GET"]),  # 15
        Route(f"{PREFIX}/admin/queues/{{command}}", a.queue_stats, methods=["GET"]),  # 16
        Route(f"{PREFIX}/admin/tasks/cleanup", a.cleanup, methods=["POST"]),  # 17
        Route("/metrics", a.metrics, methods=["GET"]),  # 21
        Route("/healthz", a.healthz, methods=["GET"]),
        Route("/readyz", a.readyz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            CodeqError: errors.codeq_error,
            HTTPException: errors.http_error,
            errors.ClientGone: errors.client_gone,
            Exception: errors.unexpected_error,
        },
    )
    return RequestId(app)


class RequestId:
    """Echo the caller's `X-Request-Id`, or give the response a fresh one (spec 02 §1.4)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and value:
                request_id = value[:128]
                break
        if not request_id:
            request_id = secrets.token_hex(16).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)
