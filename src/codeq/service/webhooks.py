"""Outbound webhooks: signing, the HTTP poster, and delivery of the result-callback outbox.

Delivery runs outside the request path. Each tick starts one attempt for every due outbox
entry of every shard this node leads (a follower's copy of the outbox waits for its own
term as leader) and each attempt's outcome goes back through the shard as a command, so a
restart or a failover resumes from the stored attempt count and due time. Receivers must
still dedupe by `taskId` (as in the reference): a crash between a successful POST and the
write recording it sends that callback again after the restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from codeq.core.clock import Clock
from codeq.core.errors import CodeqError, NotLeader
from codeq.engine import commands as c
from codeq.engine.outbox import OutboxEntry
from codeq.h1 import H1Client, H1Error
from codeq.observability.metrics import Metrics
from codeq.service.callback_hosts import CallbackHosts
from codeq.service.node import Node, Shard
from codeq.service.ratelimit import OutboundLimiter
from codeq.wire import callbacks

log = logging.getLogger("codeq.webhooks")


TENANT_KEY_PREFIX = "codeq-tenant:"


def tenant_secret(secret: str, tenant: str) -> str:
    """One tenant's signing key: hex HMAC-SHA256(secret, "codeq-tenant:<tenant>").

    With `webhookSignaturePerTenant` every tenant's receivers verify with their own key, so a
    signature one tenant can obtain (by pointing a webhook at itself) is worthless at another
    tenant's receiver. The hex text is used exactly like the shared secret in the reference's
    scheme, so a receiver only swaps the key it verifies with.
    """
    return hmac.new(secret.encode(), (TENANT_KEY_PREFIX + tenant).encode(), hashlib.sha256).hexdigest()


def signature_headers(
    secret: str, timestamp_s: int, body: bytes, tenant: str | None = None
) -> dict[str, str]:
    """The reference's scheme: hex HMAC-SHA256 of "<unix seconds>.<raw body>", no prefix.

    `tenant` (given when signatures are per tenant) signs with that tenant's derived key.
    """
    if not secret.strip():
        return {}
    key = secret if tenant is None else tenant_secret(secret, tenant)
    mac = hmac.new(key.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return {"X-CodeQ-Timestamp": str(timestamp_s), "X-CodeQ-Signature": mac.hexdigest()}


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the status code; raise OSError on transport failure."""
        ...

    async def aclose(self) -> None: ...


class H1Poster:
    """POSTs through codeq's HTTP/1.1 client (`codeq.h1`, keep-alive pools per origin, ADR 0002):
    httpx costs several times more CPU per request, and callbacks share the event loop with the API.
    The reference's 15 s timeout; redirects are not followed (they could lead past the
    host checks)."""

    def __init__(self, timeout_seconds: float = 15.0) -> None:
        # The base URL only anchors the client: every request names its own absolute URL.
        self._client = H1Client("http://localhost", max_connections=8)
        self._timeout = timeout_seconds

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        fields = (("Content-Type", "application/json"), ("User-Agent", "codeq"), *headers.items())
        try:
            response = await self._client.request(
                "POST", url, headers=fields, body=body, timeout=self._timeout
            )
        except H1Error as exc:
            raise OSError(str(exc)) from exc
        return response.status

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    secret: str = ""
    per_tenant: bool = False  # sign with each task's tenant key (`tenant_secret`)
    max_attempts: int = 5
    base_backoff_seconds: int = 2
    max_backoff_seconds: int = 60
    concurrency: int = 32

    def backoff_ms(self, attempt: int) -> int:
        """After failed attempt `attempt` (1-based): min(base · 2^(attempt−1), max) seconds."""
        seconds = self.base_backoff_seconds * (1 << min(attempt - 1, 30))
        return min(seconds, self.max_backoff_seconds) * 1000


TimestampFn = Callable[[int], str]


class ResultCallbacks:
    """Delivers the outbox entries of the shards this node leads; `tick` is one pass."""

    def __init__(  # noqa: PLR0913 — collaborators injected by the composition root
        self,
        node: Node,
        clock: Clock,
        settings: CallbackSettings,
        hosts: CallbackHosts,
        poster: Poster,
        *,
        timestamp: TimestampFn,
        metrics: Metrics | None = None,
        limiter: OutboundLimiter | None = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.settings = settings
        self.hosts = hosts
        self.poster = poster
        self.timestamp = timestamp
        self.metrics = metrics
        self.limiter = limiter
        self._inflight: dict[str, asyncio.Task[None]] = {}
        # Called after each recorded attempt, so the runner plans the entry's next attempt.
        self.on_settled: Callable[[], None] | None = None

    async def tick(self) -> int | None:
        """Start attempts for due entries (as many as there are free slots); returns when the
        next one falls due."""
        now_ms = self.clock.now_ms()
        wake: list[int] = []
        for shard in self.node.local_shards:  # a process per shard: each delivers its own
            if not shard.is_leader:
                continue
            outbox = shard.engine.outbox
            free = self.settings.concurrency - len(self._inflight)
            for entry in outbox.take_due(now_ms, max(free, 0), self._inflight):
                wait_s = self.limiter.wait_seconds(entry.url) if self.limiter is not None else 0
                if wait_s:  # the URL's bucket is empty: try again when it has a token
                    outbox.defer(entry, now_ms + wait_s * 1000)
                    self._count_hit("task_result")
                    continue
                self._start(shard, entry)
            due = outbox.next_due_ms()
            # Due entries left behind mean every slot is busy: a finished attempt pokes us.
            if due is not None and due > now_ms:
                wake.append(due)
        return min(wake) if wake else None

    def _start(self, shard: Shard, entry: OutboxEntry) -> None:
        key = entry.delivery_id
        task = asyncio.get_running_loop().create_task(self._attempt(shard, entry))
        self._inflight[key] = task

        def done(_: asyncio.Task[None]) -> None:
            self._inflight.pop(key, None)

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait for every attempt in flight."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Abandon attempts in flight (their entries stay owed); the poster's owner closes it."""
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    def body(self, entry: OutboxEntry) -> bytes:
        """The reference's callback body (spec 01 §7.3)."""
        return callbacks.encode(
            callbacks.ResultCallbackJSON(
                task_id=entry.task_id,
                event_type=entry.command,
                status=entry.status,
                result=callbacks.stored_result(entry.result),
                error=entry.error,
                artifacts=[callbacks.ArtifactJSON(n, u) for n, u in entry.artifacts] or None,
                completed_at=self.timestamp(entry.completed_ms),
            )
        )

    async def _attempt(self, shard: Shard, entry: OutboxEntry) -> None:
        if not shard.replicator.is_leader:  # the lease, checked right before the POST
            shard.engine.outbox.put_back(entry)
            return
        delivered = await self._post(entry)
        attempt = entry.attempts + 1
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels("task_result", "ok" if delivered else "failed").inc()
        if delivered:
            next_ms = 0
            self._count(entry, "success")
        elif attempt >= self.settings.max_attempts:
            next_ms = 0  # stop after the last attempt: no final sleep (spec 01 gap 6)
            self._count(entry, "failure")
            log.warning("result callback failed", extra={"url": entry.url, "task_id": entry.task_id})
        else:
            next_ms = self.clock.now_ms() + self.settings.backoff_ms(attempt)
        outcome = c.WebhookOutcome(
            now_ms=self.clock.now_ms(), delivery_id=entry.delivery_id, delivered=delivered, next_ms=next_ms
        )
        try:
            await shard.submit(outcome)
        except NotLeader:  # lost leadership: the new leader owns the entry now (expected)
            log.debug("callback attempt not recorded: no longer the leader")
            shard.engine.outbox.put_back(entry)
        except CodeqError as exc:
            log.warning("could not record a callback attempt: %s", exc)
            shard.engine.outbox.put_back(entry)
        if self.on_settled is not None:
            self.on_settled()

    async def _post(self, entry: OutboxEntry) -> bool:
        try:
            await self.hosts.check_resolved(entry.url)
        except CodeqError as exc:
            log.warning("result callback refused: %s", exc.message)
            return False
        body = self.body(entry)
        tenant = entry.tenant if self.settings.per_tenant else None
        headers = signature_headers(self.settings.secret, self.clock.now_ms() // 1000, body, tenant)
        try:
            status = await self.poster.post(entry.url, body, headers)
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a URL the client cannot send
            log.info("result callback attempt failed: %s", exc)
            return False
        return 200 <= status < 300

    def _count_hit(self, operation: str) -> None:
        if self.metrics is not None:
            self.metrics.rate_limit_hits.labels("webhook", operation).inc()

    def _count(self, entry: OutboxEntry, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels("task_result", entry.command, outcome).inc()
