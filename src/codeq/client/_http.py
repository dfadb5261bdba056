"""The HTTP/JSON transport: a keep-alive HTTP/1.1 pool, leader redirects, errors mapped to the SDK's tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import msgspec

from codeq.client import _errors as e
from codeq.client._json import (
    CLAIM_BATCH_LIMIT,
    RESULTS_BATCH_LIMIT,
    BatchCreateIn,
    ResultIn,
    TaskWithResultIn,
    claimed_tasks,
    create_request,
    result_from_wire,
    results_outcomes,
    results_request,
    task_from_wire,
)
from codeq.client._models import Result, ResultSpec, Task, TaskSpec
from codeq.client._tls import ClientTls
from codeq.client._tokens import Token, TokenSource
from codeq.client._tracing import trace_headers
from codeq.h1 import H1Client, H1ConnectError, H1Error, H1Response
from codeq.wire import http as w

PREFIX = "/v1/codeq"
USER_AGENT = "codeq-python"
MAX_REDIRECTS = 5
MAX_REMEMBERED_CLAIMS = 65_536  # task id -> shard process of its claim (forgotten on outcome)
_REDIRECTS = (307, 308)


_encode = msgspec.json.Encoder().encode
_task = msgspec.json.Decoder(w.TaskJSON).decode
_result = msgspec.json.Decoder(ResultIn).decode
_task_with_result = msgspec.json.Decoder(TaskWithResultIn).decode
_nack = msgspec.json.Decoder(w.NackJSON).decode
_batch = msgspec.json.Decoder(BatchCreateIn).decode


class HttpTransport:
    """Talks to codeq's `/v1/codeq` routes. `timeout` bounds each request; long polls get
    their wait added on top. 307/308 answers (a follower pointing at its leader) are followed
    with the same method, body and token, up to `MAX_REDIRECTS` hops."""

    def __init__(
        self,
        base_url: str,
        token: Token,
        *,
        timeout: float = 10.0,
        max_connections: int = 64,
        worker_id: str | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self.timeout = timeout
        # One tuple for every request while the token stays the same: the client caches its
        # encoding. `X-Worker-Id` makes the leases this transport takes its own, apart from other
        # workers on the same token.
        self._tokens = TokenSource(token)
        self._fixed_headers = (
            ("content-type", "application/json"),
            ("user-agent", USER_AGENT),
            *((("x-worker-id", worker_id),) if worker_id else ()),
        )
        self._headers_for: tuple[str, tuple[tuple[str, str], ...]] = ("", self._fixed_headers)
        # Our own HTTP/1.1 pool: httpx managed ~1,500 requests/s here, this ~15,000 (docs/adr/0002).
        verify = ClientTls.from_environment().verify()
        self._client = H1Client(
            self._base_url,
            max_connections=max_connections,
            verify=verify,
            affinity_header=w.SHARD_PROCESS_HEADER,
        )
        # With a process per shard, which process answered each claim: a task's heartbeats and
        # outcome go on a connection to that process, where its shard mostly is (ADR 0009).
        self._claimed_at: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return self._base_url

    async def create(self, spec: TaskSpec) -> Task:
        reply = await self._send("POST", "/tasks", _encode(create_request(spec)))
        replayed = (reply.header("idempotent-replay") or "").lower() == "true"
        return task_from_wire(_task(reply.body), replayed=replayed)

    async def create_batch(self, specs: Sequence[TaskSpec]) -> list[Task | e.CodeqError]:
        items = [msgspec.Raw(_encode(create_request(spec))) for spec in specs]
        reply = await self._send("POST", "/tasks/batch", _encode(w.BatchCreateRequest(tasks=items)))
        out: list[Task | e.CodeqError] = []
        for index, item in enumerate(_batch(reply.body).results):
            if item.task is not None:
                out.append(task_from_wire(item.task))
            else:
                out.append(e.BatchItemError(item.error or "rejected", index))
        return out

    async def get_task(self, task_id: str) -> Task:
        return task_from_wire(_task((await self._send("GET", _task_path(task_id))).body))

    async def get_result(self, task_id: str, wait_seconds: int) -> Result:
        params = {"waitSeconds": str(wait_seconds)} if wait_seconds > 0 else None
        reply = await self._send("GET", _task_path(task_id, "result"), params=params, wait=wait_seconds)
        both = _task_with_result(reply.body)
        return result_from_wire(both.result, both.task)

    async def claim(self, commands: Sequence[str], lease_seconds: int, wait_seconds: int) -> Task | None:
        body = w.ClaimRequest(commands=list(commands), lease_seconds=lease_seconds, wait_seconds=wait_seconds)
        reply = await self._send("POST", "/tasks/claim", _encode(body), wait=wait_seconds)
        if reply.status == 204:
            return None
        task = task_from_wire(_task(reply.body))
        self._note_claim(reply, [task])
        return task

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        """Batch claims of up to the server's 10 while they come back full; batch claims never
        wait, so when the first finds nothing, one long poll of `wait_seconds` for a single task."""
        tasks: list[Task] = []
        while len(tasks) < count:
            want = min(count - len(tasks), CLAIM_BATCH_LIMIT)
            body = w.BatchClaimRequest(count=want, commands=list(commands), lease_seconds=lease_seconds)
            try:
                reply = await self._send("POST", "/tasks/claim/batch", _encode(body))
            except e.CodeqError:
                if tasks:  # these are leased to us already: hand them over rather than lose them
                    break
                raise
            got = [] if reply.status == 204 else claimed_tasks(reply.body)
            self._note_claim(reply, got)
            tasks += got
            if len(got) < want:
                break
        if not tasks and wait_seconds > 0:
            task = await self.claim(commands, lease_seconds, wait_seconds)
            tasks = [] if task is None else [task]
        return tasks

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result | e.CodeqError]:
        """`/tasks/batch/results` in chunks of the server's 100; a chunk that fails as a whole
        raises, unless an earlier chunk went through (then its items carry the error)."""
        outcomes: list[Result | e.CodeqError] = []
        for start in range(0, len(items), RESULTS_BATCH_LIMIT):
            chunk = list(items[start : start + RESULTS_BATCH_LIMIT])
            owners = [self._claimed_at.pop(item.task_id, None) for item in chunk]
            try:
                reply = await self._send(
                    "POST", "/tasks/batch/results", results_request(chunk), prefer=_most_common(owners)
                )
            except e.CodeqError as exc:
                if not outcomes:
                    raise
                outcomes += [exc] * len(chunk)
                continue
            outcomes += results_outcomes(reply.body)
        return outcomes

    async def heartbeat(self, task_id: str, extend_seconds: int, lease_token: int = 0) -> None:
        body = _encode(w.HeartbeatRequest(extend_seconds=extend_seconds, lease_token=lease_token or None))
        await self._send("POST", _task_path(task_id, "heartbeat"), body, prefer=self._claimed_at.get(task_id))

    async def nack(self, task_id: str, delay_seconds: int | None, reason: str, lease_token: int = 0) -> bool:
        request = w.NackRequest(
            delay_seconds=delay_seconds, reason=reason or None, lease_token=lease_token or None
        )
        prefer = self._claimed_at.pop(task_id, None)
        reply = await self._send("POST", _task_path(task_id, "nack"), _encode(request), prefer=prefer)
        return _nack(reply.body).status == "dlq"

    async def abandon(self, task_id: str, lease_token: int = 0) -> None:
        body = _encode(w.AbandonRequest(lease_token=lease_token or None))
        prefer = self._claimed_at.pop(task_id, None)
        await self._send("POST", _task_path(task_id, "abandon"), body, prefer=prefer)

    async def submit_result(
        self, task_id: str, status: str, result: Any, error: str, lease_token: int = 0
    ) -> Result:
        raw = w.NULL if result is None else msgspec.Raw(_encode(result))
        request = w.SubmitResultRequest(
            status=status, result=raw, error=error or None, lease_token=lease_token or None
        )
        body = _encode(request)
        prefer = self._claimed_at.pop(task_id, None)
        reply = await self._send("POST", _task_path(task_id, "result"), body, prefer=prefer)
        return result_from_wire(_result(reply.body))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        params: dict[str, str] | None = None,
        wait: float = 0,
        prefer: str | None = None,
    ) -> H1Response:
        """One logical request: follow redirects, and turn any failure into a CodeqError.
        `prefer`: on a connection to the shard process so tagged, if one is idle."""
        target = PREFIX + path + (f"?{urlencode(params)}" if params else "")
        url = self._base_url + target
        refreshed = False
        for _ in range(MAX_REDIRECTS + 2):
            reply = await self._exchange(method, url, body or b"", self.timeout + wait, prefer)
            if reply.status == 401 and self._tokens.refreshable and not refreshed:
                # The provider's token expired or was revoked: one more try with a new one.
                await self._tokens.refresh()
                refreshed = True
                continue
            location = reply.header("location")
            if reply.status not in _REDIRECTS or not location:
                if reply.status >= 300:
                    raise e.error_from_response(reply.status, reply.body, reply.header("retry-after"))
                return reply
            # The Location carries the original path and query already (spec 02 §5).
            url = urljoin(url, location)
        raise e.CodeqError(f"more than {MAX_REDIRECTS} redirects", 307)

    async def _exchange(
        self, method: str, url: str, body: bytes, timeout: float, prefer: str | None = None
    ) -> H1Response:
        try:
            headers = await self._headers() + trace_headers()  # the same tuple when there is no trace
            return await self._client.request(
                method, url, headers=headers, body=body, timeout=timeout, prefer=prefer
            )
        except H1ConnectError as exc:
            raise e.ConnectionFailed(f"cannot connect to {url}: {exc}", request_sent=False) from exc
        except (H1Error, TimeoutError) as exc:
            # The request may have been processed: only callers whose request is safe to
            # repeat retry this (see the retry rules in the producer and worker).
            sent = getattr(exc, "request_sent", True)
            raise e.ConnectionFailed(f"{type(exc).__name__}: {exc}", request_sent=sent) from exc

    def _note_claim(self, reply: H1Response, tasks: list[Task]) -> None:
        process = reply.header(w.TASK_PROCESS_HEADER) or reply.header(w.SHARD_PROCESS_HEADER)
        if process is None or not tasks:
            return  # one process serves every shard
        if len(self._claimed_at) >= MAX_REMEMBERED_CLAIMS:  # tasks whose outcome never came
            self._claimed_at.clear()
        for task in tasks:
            self._claimed_at[task.id] = process

    async def _headers(self) -> tuple[tuple[str, str], ...]:
        token = await self._tokens.current()
        if self._headers_for[0] != token:
            self._headers_for = (token, (("authorization", f"Bearer {token}"), *self._fixed_headers))
        return self._headers_for[1]


def _most_common(values: list[str | None]) -> str | None:
    known = [value for value in values if value is not None]
    return max(set(known), key=known.count) if known else None


def _task_path(task_id: str, action: str = "") -> str:
    path = f"/tasks/{quote(task_id, safe='')}"
    return f"{path}/{action}" if action else path
