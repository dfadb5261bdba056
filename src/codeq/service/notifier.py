"""The notifier (spec 01 §9.2): advisory "queue ready" POSTs to subscribers, off the request path.

Whenever tasks become claimable (create, promotion of a delayed task, nack, abandon, lease
expiry, DLQ requeue — not only create, spec 01 gap 7) the (tenant, command) is marked; each
tick sends one round of notifications for every marked queue, so a burst of creates costs
one notification per subscriber and throttle window, never a POST inside a create request.

Choosing who hears (fixing spec 01 gap 7, where members other than the first of a group
never heard anything): `fanout` subscriptions all hear; each `group` hears through one
member, taken in turn, skipping members still inside their `minIntervalSeconds`; among the
`hash` subscriptions one owns each (tenant, command) by rendezvous hashing, so commands
spread over subscribers and stay with the same one while the set is unchanged.

Throttle times and rotation counters are kept in memory by the node that notifies (the one
leading shard 0, where subscriptions live): notifications are advisory, and a failover at
worst sends one early notification per subscriber. One attempt per notification, as in the
reference.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from codeq.core.clock import Clock
from codeq.core.errors import CodeqError
from codeq.engine.subscriptions import Subscription
from codeq.observability.metrics import Metrics
from codeq.service.callback_hosts import CallbackHosts
from codeq.service.node import Node
from codeq.service.ratelimit import OutboundLimiter
from codeq.service.webhooks import Poster, signature_headers
from codeq.wire import callbacks

log = logging.getLogger("codeq.notifier")

CLAIM_URL = "/v1/codeq/tasks/claim"


class Notifier:
    def __init__(  # noqa: PLR0913 — collaborators injected by the composition root
        self,
        node: Node,
        clock: Clock,
        hosts: CallbackHosts,
        poster: Poster,
        *,
        secret: str = "",
        per_tenant: bool = False,
        metrics: Metrics | None = None,
        limiter: OutboundLimiter | None = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.hosts = hosts
        self.poster = poster
        self.secret = secret
        self.per_tenant = per_tenant  # sign with the tenant's derived key (webhooks.tenant_secret)
        self.metrics = metrics
        self.limiter = limiter
        self._marked: set[tuple[str, str]] = set()
        self._last_sent_ms: dict[str, int] = {}
        self._rotation: dict[tuple[str, str, str], int] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(32)
        self.on_marked: Callable[[], None] | None = None  # the runner's poke

    def ready(self, tenant: str, cmd_key: str) -> None:
        """Tasks became claimable in (tenant, command): called for every such apply, so cheap."""
        key = (tenant, cmd_key)
        if not self.node.runs_here(0):
            return  # the subscriptions are shard 0's, and so is the notifying
        if self.node.local(0).engine.subscriptions.by_tenant.get(tenant) and key not in self._marked:
            self._marked.add(key)
            if self.on_marked is not None:
                self.on_marked()

    async def tick(self) -> int | None:
        marked, self._marked = self._marked, set()
        if not self.node.runs_here(0):
            return None  # the leader of shard 0 notifies; every replica sees the same events
        now_ms = self.clock.now_ms()
        self._forget_removed()
        for tenant, cmd_key in sorted(marked):
            for sub in self.select(tenant, cmd_key, now_ms):
                if self.limiter is not None and self.limiter.wait_seconds(sub.callback_url):
                    if self.metrics is not None:  # denied: dropped, as in the reference
                        self.metrics.rate_limit_hits.labels("webhook", "queue_ready").inc()
                    continue
                task = asyncio.get_running_loop().create_task(self._send(sub, cmd_key, tenant, now_ms))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        return None

    def _forget_removed(self) -> None:
        """Drop throttle times of subscriptions that are gone, once they outnumber the live ones."""
        live = self.node.local(0).engine.subscriptions.by_id
        if len(self._last_sent_ms) > 2 * len(live) + 1024:
            self._last_sent_ms = {k: v for k, v in self._last_sent_ms.items() if k in live}
            self._rotation = {}  # turns restart at the first member: harmless, and rare

    async def drain(self) -> None:
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

    def select(self, tenant: str, cmd_key: str, now_ms: int) -> list[Subscription]:
        """Who hears about (tenant, command) now; records the throttle time of each one chosen."""
        subs = self.node.local(0).engine.subscriptions.active(tenant, cmd_key, now_ms)
        chosen = [s for s in subs if s.delivery_mode == "fanout" and self._allow(s, now_ms)]
        groups: dict[str, list[Subscription]] = {}
        for sub in subs:
            if sub.delivery_mode == "group":
                groups.setdefault(sub.group_id, []).append(sub)
        for group_id, members in sorted(groups.items()):
            member = self._take_turn((tenant, cmd_key, group_id), members, now_ms)
            if member is not None:
                chosen.append(member)
        hashed = [s for s in subs if s.delivery_mode == "hash"]
        if hashed:
            owner = max(hashed, key=lambda s: _weight(s.id, tenant, cmd_key))
            if self._allow(owner, now_ms):
                chosen.append(owner)
        return chosen

    def _take_turn(
        self, key: tuple[str, str, str], members: list[Subscription], now_ms: int
    ) -> Subscription | None:
        start = self._rotation.get(key, 0)
        for offset in range(len(members)):
            member = members[(start + offset) % len(members)]
            if self._allow(member, now_ms):
                self._rotation[key] = (start + offset + 1) % len(members)
                return member
        return None

    def _allow(self, sub: Subscription, now_ms: int) -> bool:
        last = self._last_sent_ms.get(sub.id)
        if last is not None and now_ms - last < sub.min_interval_seconds * 1000:
            return False
        self._last_sent_ms[sub.id] = now_ms
        return True

    async def body(self, sub: Subscription, cmd_key: str, tenant: str, now_ms: int) -> bytes:
        depth = await self._ready_depth(tenant, cmd_key)
        sent_at = datetime.fromtimestamp(now_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = callbacks.QueueReadyJSON(
            event_type=cmd_key,
            available=True,
            queue_depth=depth,  # the reference always sent 0
            claim_url=CLAIM_URL,
            sent_at=sent_at,
            notification_id=f"ntf-{sub.id}",
        )
        return callbacks.encode(body)

    async def _ready_depth(self, tenant: str, cmd_key: str) -> int:
        """Ready tasks of the queue on every shard: with a process per shard, the other
        shards' counts are read in their processes (ADR 0009)."""
        shards = self.node.shards
        counts = await asyncio.gather(
            *(shard.queue_counts(tenant, cmd_key) for shard in shards), return_exceptions=True
        )
        depth = 0
        for shard, count in zip(shards, counts, strict=True):
            if isinstance(count, CodeqError):  # a shard process gone away: the others still count
                log.info("queue depth of shard %d not read: %s", shard.number, count)
            elif isinstance(count, BaseException):
                raise count
            else:
                depth += count[0]
        return depth

    async def _send(self, sub: Subscription, cmd_key: str, tenant: str, now_ms: int) -> None:
        async with self._slots:
            if not self.node.runs_here(0):
                return  # the lease ran out since the tick: the new leader notifies
            outcome = "failure"
            try:
                await self.hosts.check_resolved(sub.callback_url, "callback_url")
                body = await self.body(sub, cmd_key, tenant, now_ms)
                signer = tenant if self.per_tenant else None
                headers = signature_headers(self.secret, self.clock.now_ms() // 1000, body, signer)
                status = await self.poster.post(sub.callback_url, body, headers)
                outcome = "success" if 200 <= status < 300 else "failure"
            except Exception as exc:  # one attempt: a refused host, a transport error, all only logged
                log.info("notify failed: %s", exc)
            if self.metrics is not None:
                self.metrics.webhook_deliveries.labels("queue_ready", cmd_key, outcome).inc()
                self.metrics.webhook_attempts.labels(
                    "queue_ready", "ok" if outcome == "success" else "failed"
                ).inc()


def _weight(sub_id: str, tenant: str, cmd_key: str) -> bytes:
    """Rendezvous weight of a subscription for a queue. A cryptographic hash, because FNV-1a
    of keys that differ only at the end orders subscribers the same way for every queue."""
    return hashlib.blake2b(f"{sub_id}\0{tenant}\0{cmd_key}".encode(), digest_size=8).digest()
