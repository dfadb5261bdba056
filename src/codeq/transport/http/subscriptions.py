"""Subscription routes (spec 02 §4.12–4.13), plus reads and DELETE (spec 02 gap 11)."""

from __future__ import annotations

import msgspec

from codeq.core.errors import InvalidInput
from codeq.service.container import Services
from codeq.service.subscriptions import NewSubscription, Subscription
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.body import decode
from codeq.transport.http.errors import json_reply
from codeq.transport.http.render import TimeFormat
from codeq.wire import http as w

_NO_CONTENT = Reply(204)


class SubscriptionRoutes:
    def __init__(self, services: Services, times: TimeFormat, max_body_bytes: int) -> None:
        self.s = services
        self.times = times
        self.max_body = max_body_bytes

    async def create(self, request: Request) -> Reply:
        principal = self.s.auth.worker(request.header(b"authorization"))
        body = decode(await request.body(self.max_body), w.SubscriptionRequest)
        if not body.callback_url:
            raise InvalidInput("invalid body", field="callbackUrl")
        spec = NewSubscription(
            callback_url=body.callback_url,
            event_types=body.event_types or [],
            ttl_seconds=body.ttl_seconds or 0,
            delivery_mode=body.delivery_mode or "",
            group_id=body.group_id or "",
            min_interval_seconds=body.min_interval_seconds,
        )
        outcome = await self.s.subscriptions.create(principal, spec)
        return self._reply(outcome.subscription_id, outcome.expires_ms)

    async def heartbeat(self, request: Request) -> Reply:
        principal = self.s.auth.worker(request.header(b"authorization"))
        raw = await request.body(self.max_body)
        try:  # leniently parsed: an unparsable body is `{}` (spec 02 §4.13)
            ttl = (
                msgspec.json.decode(raw, type=w.SubscriptionHeartbeatRequest).ttl_seconds
                if raw.strip()
                else 0
            )
        except (msgspec.MsgspecError, RecursionError):  # too deep to parse is unparsable too
            ttl = 0
        outcome = await self.s.subscriptions.heartbeat(principal, request.path_params["id"], ttl or 0)
        return self._reply(outcome.subscription_id, outcome.expires_ms)

    async def delete(self, request: Request) -> Reply:
        principal = self.s.auth.worker(request.header(b"authorization"))
        await self.s.subscriptions.delete(principal, request.path_params["id"])
        return _NO_CONTENT

    async def list(self, request: Request) -> Reply:
        principal = self.s.auth.worker(request.header(b"authorization"))
        subs = await self.s.subscriptions.list(principal)
        return json_reply(w.SubscriptionListJSON(subscriptions=[self._detail(sub) for sub in subs]))

    async def get(self, request: Request) -> Reply:
        principal = self.s.auth.worker(request.header(b"authorization"))
        return json_reply(self._detail(await self.s.subscriptions.get(principal, request.path_params["id"])))

    def _detail(self, sub: Subscription) -> w.SubscriptionDetailJSON:
        return w.SubscriptionDetailJSON(
            subscription_id=sub.id,
            callback_url=sub.callback_url,
            event_types=list(sub.event_types),
            delivery_mode=sub.delivery_mode,
            min_interval_seconds=sub.min_interval_seconds,
            created_at=self.times.timestamp(sub.created_ms),
            expires_at=self.times.timestamp(sub.expires_ms),
            group_id=sub.group_id,
        )

    def _reply(self, sub_id: str, expires_ms: int) -> Reply:
        return json_reply(
            w.SubscriptionJSON(expires_at=self.times.timestamp(expires_ms), subscription_id=sub_id)
        )
