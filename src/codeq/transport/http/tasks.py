"""Task routes (spec 02 §4.1–4.11): parse, call the service, render. Nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from codeq.auth.principal import Principal
from codeq.core.errors import CodeqError, InvalidInput
from codeq.core.model import Task
from codeq.service.container import Services
from codeq.service.results import ArtifactIn, NewResult
from codeq.service.tasks import NewTask
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.body import decode
from codeq.transport.http.errors import ClientGone, json_reply, status_of
from codeq.transport.http.fields import error_text
from codeq.transport.http.render import TimeFormat, parse_rfc3339_ms
from codeq.wire import http as w

T = TypeVar("T")
R = TypeVar("R")
_NO_CONTENT = Reply(204)
_TASK_PROCESS = w.TASK_PROCESS_HEADER.encode()


class TaskRoutes:
    def __init__(self, services: Services, times: TimeFormat, max_body_bytes: int) -> None:
        self.s = services
        self.times = times
        self.max_body = max_body_bytes

    async def _body(self, request: Request) -> bytes:
        return await request.body(self.max_body)

    def _auth(self, request: Request) -> str | None:
        return request.header(b"authorization")

    def _worker(self, request: Request) -> Principal:
        # `X-Worker-Id` names one instance of the token's subject (spec 03 gap 8).
        return self.s.auth.worker(self._auth(request)).instance(request.header(b"x-worker-id"))

    # -- producers -----------------------------------------------------------------------

    async def create(self, request: Request) -> Reply:
        principal = self.s.auth.producer(self._auth(request))
        spec = new_task(decode(await self._body(request), w.CreateTaskRequest))
        spec.idempotency_key = _idempotency_key(request.header(b"idempotency-key"), spec.idempotency_key)
        task, replay = await self.s.tasks.create(principal, spec)
        # A replay answers 200 with a header; a fresh create 202 (spec 02 gap 6).
        headers = [(b"idempotent-replay", b"true")] if replay else None
        return json_reply(self.times.task(task), 200 if replay else 202, headers)

    async def create_batch(self, request: Request) -> Reply:
        principal = self.s.auth.producer(self._auth(request))
        body = decode(await self._body(request), w.BatchCreateRequest, envelope=3)
        specs = [_item(raw, w.CreateTaskRequest, new_task) for raw in body.tasks]
        outcomes = await self.s.tasks.create_many(principal, specs)
        results = [
            {"error": error_text(o)} if isinstance(o, CodeqError) else {"task": self.times.task(o[0])}
            for o in outcomes
        ]
        return json_reply({"results": results})

    # -- workers -------------------------------------------------------------------------

    async def claim(self, request: Request) -> Reply:
        principal = self._worker(request)
        body = decode(await self._body(request), w.ClaimRequest, empty_ok=True)
        wait = body.wait_seconds or 0
        claim = self.s.tasks.claim(principal, body.commands, body.lease_seconds, wait)
        tasks = await (_until_disconnect(request, claim) if wait > 0 else claim)
        if not tasks:
            return _NO_CONTENT
        return json_reply(self.times.task(tasks[0]), headers=self._owner(tasks[0].id))

    async def claim_batch(self, request: Request) -> Reply:
        principal = self._worker(request)
        body = decode(await self._body(request), w.BatchClaimRequest)
        limit = self.s.tasks.policy.max_claim_batch
        if body.count < 1:
            raise InvalidInput("invalid body", field="count")
        if body.count > limit:
            raise InvalidInput(f"count exceeds maximum of {limit}", field="count")
        tasks = await self.s.tasks.claim(principal, body.commands, body.lease_seconds, 0, body.count)
        if not tasks:
            return _NO_CONTENT
        return json_reply({"tasks": [self.times.task(t) for t in tasks]}, headers=self._owner(tasks[0].id))

    def _owner(self, task_id: str) -> list[tuple[bytes, bytes]] | None:
        """`codeq-task-process` when the claim was forwarded: a claim takes its tasks from one
        shard process, which may not be this one (ADR 0009)."""
        number = self.s.tasks.owner_elsewhere(task_id)
        return None if number is None else [(_TASK_PROCESS, str(number).encode())]

    async def heartbeat(self, request: Request) -> Reply:
        principal = self._worker(request)
        body = decode(await self._body(request), w.HeartbeatRequest, empty_ok=True)
        await self.s.tasks.heartbeat(
            principal, request.path_params["id"], body.extend_seconds, body.lease_token or 0
        )
        return json_reply({"ok": True})

    async def abandon(self, request: Request) -> Reply:
        principal = self._worker(request)
        token = _abandon_lease_token(await self._body(request))
        await self.s.tasks.abandon(principal, request.path_params["id"], token)
        return json_reply({"status": "requeued"})

    async def nack(self, request: Request) -> Reply:
        principal = self._worker(request)
        body = decode(await self._body(request), w.NackRequest, empty_ok=True)
        delay, dead = await self.s.tasks.nack(
            principal, request.path_params["id"], body.delay_seconds, body.reason or "", body.lease_token or 0
        )
        return json_reply(w.NackJSON(delay_seconds=delay, status="dlq" if dead else "requeued"))

    async def submit_result(self, request: Request) -> Reply:
        principal = self._worker(request)
        body = decode(await self._body(request), w.SubmitResultRequest, message="invalid request body")
        spec = new_result(request.path_params["id"], body)
        record = await self.s.results.submit(principal, spec)
        return json_reply(self.times.result(record))

    async def submit_results(self, request: Request) -> Reply:
        principal = self._worker(request)
        body = decode(await self._body(request), w.BatchResultsRequest, envelope=3)
        items = [_item(raw, w.BatchResultItem, _batch_result) for raw in body.results]
        outcomes = await self.s.results.submit_many(principal, items)
        results: list[dict[str, object]] = []
        for item, outcome in zip(items, outcomes, strict=True):
            task_id = item.task_id if isinstance(item, NewResult) else ""
            if isinstance(outcome, CodeqError):
                results.append({"taskId": task_id, "error": error_text(outcome)})
            else:
                results.append({"taskId": task_id, "result": self.times.result(outcome)})
        return json_reply({"results": results})

    # -- reads ---------------------------------------------------------------------------

    async def get_task(self, request: Request) -> Reply:
        principal = self.s.auth.any(self._auth(request))
        task = await _renamed_not_found(self.s.tasks.get(principal, request.path_params["id"]))
        return json_reply(self.times.task(task), headers=self._consistency(task.id))

    async def get_result(self, request: Request) -> Reply:
        principal = self.s.auth.any(self._auth(request))
        wait = _int_or_zero(request.query("waitSeconds"))
        read = self.s.results.get(principal, request.path_params["id"], wait)
        task, record = await (_until_disconnect(request, read) if wait > 0 else read)
        body = w.TaskWithResultJSON(result=self.times.result(record), task=self.times.task(task))
        return json_reply(body, headers=self._consistency(task.id))

    def _consistency(self, task_id: str) -> list[tuple[bytes, bytes]]:
        """Reads are local: say whether this one came from the task's leader or a follower."""
        return [(b"x-codeq-read", self.s.tasks.node.read_consistency(task_id).encode())]


def new_task(body: w.CreateTaskRequest) -> NewTask:
    if bytes(body.payload) == b"null":
        raise InvalidInput("invalid body", field="payload")
    run_at_ms = None
    if body.run_at is not None:
        run_at_ms = parse_rfc3339_ms(body.run_at, "runAt", "invalid 'runAt' (use RFC3339)")
    return NewTask(
        command=body.command,
        payload=bytes(body.payload).decode(),
        priority=body.priority or 0,
        webhook=body.webhook or "",
        max_attempts=body.max_attempts,
        idempotency_key=body.idempotency_key or "",
        run_at_ms=run_at_ms,
        delay_seconds=body.delay_seconds,
    )


def _idempotency_key(header: str | None, body_key: str) -> str:
    """The `Idempotency-Key` header is an alias of the body's `idempotencyKey` (spec 02 gap 6),
    as clients written for HTTP APIs at large send it; two different keys are refused."""
    if header is None or header == body_key:
        return body_key
    if body_key:
        raise InvalidInput("Idempotency-Key header and body idempotencyKey differ", field="idempotencyKey")
    return header


def new_result(task_id: str, body: w.SubmitResultRequest) -> NewResult:
    result = None
    if bytes(body.result) != b"null":
        if not bytes(body.result).lstrip().startswith(b"{"):
            raise InvalidInput("invalid request body", field="result")
        result = bytes(body.result).decode()
    artifacts = [
        ArtifactIn(name=a.name, url=a.url or "", content_base64=a.content_base64 or "")
        for a in body.artifacts or ()
    ]
    return NewResult(task_id, body.status, result, body.error or "", artifacts, body.lease_token or 0)


def _abandon_lease_token(body: bytes) -> int:
    """Abandon tolerates any body, even a malformed one (spec 02 §1): only a well-formed one
    can carry a lease token; without one the owner check alone applies, as before."""
    try:
        return decode(body, w.AbandonRequest, empty_ok=True).lease_token or 0
    except InvalidInput:
        return 0


def _batch_result(body: w.BatchResultItem) -> NewResult:
    return new_result(body.task_id, body)


def _item(raw: msgspec.Raw, cls: type[T], build: Callable[[T], R]) -> R | CodeqError:
    """One batch item: decoded and converted, or the error that item alone answers with."""
    try:
        return build(decode(bytes(raw), cls))
    except CodeqError as exc:
        return exc


async def _renamed_not_found(read: Awaitable[Task]) -> Task:
    try:
        return await read
    except CodeqError as exc:
        if status_of(exc) == 404:
            raise type(exc)("not found") from None
        raise


def _int_or_zero(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run a long poll, cancelling it if the client goes away (its claim is then released)."""
    watch = request.disconnect_watch()
    if watch is None:
        return await _until_receive_disconnect(request, work)
    # Our server calls back on disconnect: the poll runs in this task, which the callback
    # cancels; no watcher task per request.
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def cancel() -> None:
        nonlocal gone
        gone = True
        task.cancel()

    watch(cancel)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        raise ClientGone() from None
    finally:
        watch(None)
        if gone:
            task.uncancel()  # our cancel became ClientGone (or was absorbed): not a cancellation


async def _until_receive_disconnect(request: Request, work: Awaitable[T]) -> T:
    """The same, for any ASGI server: a second task waits for `http.disconnect`."""
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(request.disconnected())
    try:
        done, _ = await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        if job in done:
            return job.result()
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        raise ClientGone()
    finally:
        gone.cancel()
