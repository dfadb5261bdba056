"""The HTTP application: the one route table, request ids and error replies."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec

from codeq.core.errors import CodeqError
from codeq.observability.requests import HttpObserver, Recorder
from codeq.service.container import Services
from codeq.service.policy import Policy
from codeq.transport.http import errors, openapi
from codeq.transport.http.admin import AdminRoutes
from codeq.transport.http.asgi import (
    ASGIApp,
    Handler,
    Receive,
    Reply,
    Request,
    RequestIds,
    Router,
    Scope,
    Send,
    send_reply,
)
from codeq.transport.http.backup import BackupRoutes
from codeq.transport.http.cluster import ClusterRoutes
from codeq.transport.http.console import ConsoleRoutes
from codeq.transport.http.dlq import DlqRoutes
from codeq.transport.http.render import TimeFormat
from codeq.transport.http.schedules import ScheduleRoutes
from codeq.transport.http.subscriptions import SubscriptionRoutes
from codeq.transport.http.tasks import TaskRoutes
from codeq.transport.http.topics import TopicRoutes

PREFIX = "/v1/codeq"


def build_router(
    services: Services, times: TimeFormat, max_body_bytes: int, metrics: MetricsFn | None
) -> Router:
    t = TaskRoutes(services, times, max_body_bytes)
    a = AdminRoutes(services, times, max_body_bytes, metrics)
    topics = TopicRoutes(services, max_body_bytes)
    schedules = ScheduleRoutes(services, max_body_bytes)
    router = Router()
    router.add("POST", f"{PREFIX}/tasks", t.create)  # route 1
    router.add("POST", f"{PREFIX}/tasks/batch", t.create_batch)  # 2
    router.add("POST", f"{PREFIX}/tasks/claim", t.claim)  # 3
    router.add("POST", f"{PREFIX}/tasks/claim/batch", t.claim_batch)  # 4
    router.add("POST", f"{PREFIX}/tasks/{{id}}/heartbeat", t.heartbeat)  # 5
    router.add("POST", f"{PREFIX}/tasks/{{id}}/abandon", t.abandon)  # 6
    router.add("POST", f"{PREFIX}/tasks/{{id}}/nack", t.nack)  # 7
    router.add("POST", f"{PREFIX}/tasks/{{id}}/result", t.submit_result)  # 8
    router.add("POST", f"{PREFIX}/tasks/batch/results", t.submit_results)  # 9
    subs = SubscriptionRoutes(services, times, max_body_bytes)
    router.add("POST", f"{PREFIX}/workers/subscriptions", subs.create)  # 10
    router.add("POST", f"{PREFIX}/workers/subscriptions/{{id}}/heartbeat", subs.heartbeat)  # 11
    router.add("DELETE", f"{PREFIX}/workers/subscriptions/{{id}}", subs.delete)
    router.add("GET", f"{PREFIX}/workers/subscriptions", subs.list)
    router.add("GET", f"{PREFIX}/workers/subscriptions/{{id}}", subs.get)
    router.add("GET", f"{PREFIX}/tasks/{{id}}", t.get_task)  # 12
    router.add("GET", f"{PREFIX}/tasks/{{id}}/result", t.get_result)  # 13
    router.add("PUT", f"{PREFIX}/admin/topics/{{topicName}}", topics.put)  # 18
    router.add("GET", f"{PREFIX}/admin/topics/{{topicName}}", topics.get)  # 19
    router.add("DELETE", f"{PREFIX}/admin/topics/{{topicName}}", topics.delete)  # 20
    router.add("GET", f"{PREFIX}/admin/schedules", schedules.list)
    router.add("PUT", f"{PREFIX}/admin/schedules/{{scheduleName}}", schedules.put)
    router.add("GET", f"{PREFIX}/admin/schedules/{{scheduleName}}", schedules.get)
    router.add("DELETE", f"{PREFIX}/admin/schedules/{{scheduleName}}", schedules.delete)
    cluster = ClusterRoutes(services)
    router.add("GET", f"{PREFIX}/raft/status", cluster.raft_status)  # 14
    router.add("POST", f"{PREFIX}/admin/raft/transfer-leader", cluster.transfer_leader)
    router.add("POST", f"{PREFIX}/admin/raft/members", cluster.members)
    router.add("GET", f"{PREFIX}/admin/queues", a.queues)  # 15
    router.add("GET", f"{PREFIX}/admin/queues/{{command}}", a.queue_stats)  # 16
    router.add("POST", f"{PREFIX}/admin/tasks/cleanup", a.cleanup)  # 17
    router.add("GET", f"{PREFIX}/admin/queues/{{command}}/tasks", a.list_tasks)
    router.add("GET", f"{PREFIX}/admin/overview", a.overview)
    router.add("POST", f"{PREFIX}/tasks/{{id}}/cancel", a.cancel)
    d = DlqRoutes(services, times, max_body_bytes)
    router.add("GET", f"{PREFIX}/admin/dlq/{{command}}", d.list)
    router.add("POST", f"{PREFIX}/admin/dlq/{{command}}/requeue", d.requeue)
    router.add("POST", f"{PREFIX}/admin/dlq/{{command}}/purge", d.purge)
    router.add("POST", f"{PREFIX}/admin/backup", BackupRoutes(services, max_body_bytes).backup)
    router.add("GET", "/metrics", a.metrics)  # 21
    router.add("GET", "/healthz", a.healthz)
    router.add("GET", "/readyz", a.readyz)
    router.add("GET", "/openapi.json", _openapi_handler(services.tasks.policy))
    ConsoleRoutes().add_to(router)  # the console and /docs pages: not API operations
    return router


def _openapi_handler(policy: Policy) -> Handler:
    body = msgspec.json.encode(openapi.document(policy))  # built once: the routes never change

    async def handler(request: Request) -> Reply:
        return Reply(200, body)

    return handler


MetricsFn = Callable[[], Awaitable[tuple[bytes, str]]]
MAX_BOUND_ROUTES = 1024


class HttpApp:
    """The ASGI callable: resolve the route, run the handler, turn errors into JSON replies;
    the observer (metrics, access log, spans) sees every request."""

    def __init__(self, router: Router, observer: HttpObserver | None = None) -> None:
        self.router = router
        self.ids = RequestIds()
        self.observer = observer
        # (handler, method) -> its metrics recorder, bound on first use (`plain` observer).
        self._recorders: dict[tuple[Handler | None, str], Recorder] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        handler, params, known_path = self.router.resolve(method, scope["path"])
        request = Request(scope, receive, params)
        request_id = self.ids.of(request)
        observer = self.observer
        if observer is None:
            reply = await self._reply(request, handler, known_path)
            await send_reply(send, reply, request_id, request.direct_reply())
            return
        if observer.plain:  # metrics only (tracing and access log off): nothing else per request
            record = self._recorders.get((handler, method)) or self._bind(observer, handler, method)
            started = time.perf_counter()
            status = 500
            try:
                reply = await self._reply(request, handler, known_path)
                status = reply.status
                await send_reply(send, reply, request_id, request.direct_reply())
            finally:
                record(status, time.perf_counter() - started)
            return
        seen = observer.begin(method, self.router.template_of(handler), scope["headers"])
        status = 500
        try:
            reply = await self._reply(request, handler, known_path)
            status = reply.status
            await send_reply(send, reply, request_id, request.direct_reply())
        finally:
            observer.end(seen, method, status, request_id)

    def _bind(self, observer: HttpObserver, handler: Handler | None, method: str) -> Recorder:
        record = observer.bind(self.router.template_of(handler), method)
        if len(self._recorders) < MAX_BOUND_ROUTES:  # handlers are few; methods llhttp's list
            self._recorders[(handler, method)] = record
        return record

    async def _reply(self, request: Request, handler: Handler | None, known_path: bool) -> Reply:
        if handler is None:
            reply = (
                errors.error_reply(405, "method not allowed")
                if known_path
                else errors.error_reply(404, "not found")
            )
        else:
            try:
                reply = await handler(request)
            except CodeqError as exc:
                reply = errors.codeq_error(request, exc)
            except errors.ClientGone:
                reply = Reply(499)
            except Exception as exc:  # a bug must still answer JSON, never drop the connection
                reply = errors.unexpected_error(request, exc)
        return reply


def build_app(
    services: Services,
    *,
    times: TimeFormat | None = None,
    max_body_bytes: int = 1 << 20,
    metrics: MetricsFn | None = None,
    observer: HttpObserver | None = None,
) -> ASGIApp:
    return HttpApp(build_router(services, times or TimeFormat(), max_body_bytes, metrics), observer)
