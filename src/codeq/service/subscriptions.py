"""Worker subscriptions: create, heartbeat, delete, read, and the periodic removal of expired ones.

Departures from the reference, each a gap of spec 01 §11: a subscription belongs to the
tenant and subject that made it (gap 8: only they may renew or delete it, and it hears only
about its tenant's queues); its event types must be ones the token may claim (gap 8);
`minIntervalSeconds` defaults to `subscriptionMinIntervalSeconds` (gap 7); one TTL default
for every backend (60 s, the embedded one's); a TTL above the maximum is refused (gap 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from codeq.auth.principal import SCOPE_SUBSCRIBE, WILDCARD, Principal
from codeq.core.clock import Clock
from codeq.core.errors import FIELD, Forbidden, InvalidInput
from codeq.core.names import validate_command
from codeq.engine import commands as c
from codeq.engine.outcomes import SubscriptionChanged
from codeq.engine.shards import uuid4
from codeq.engine.subscriptions import Subscription as Subscription  # what reads return, for transports
from codeq.service.callback_hosts import CallbackHosts
from codeq.service.node import Node

DELIVERY_MODES = ("fanout", "group", "hash")


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    default_ttl_seconds: int = 60
    max_ttl_seconds: int = 86_400
    default_min_interval_seconds: int = 5
    cleanup_limit: int = 1000


@dataclass(slots=True)
class NewSubscription:
    callback_url: str
    event_types: list[str] = field(default_factory=list)
    ttl_seconds: int = 0
    delivery_mode: str = ""
    group_id: str = ""
    min_interval_seconds: int | None = None


class SubscriptionService:
    """Subscriptions live on shard 0 (spec 05 §10)."""

    def __init__(
        self, node: Node, clock: Clock, hosts: CallbackHosts, settings: SubscriptionSettings | None = None
    ) -> None:
        self.node = node
        self.clock = clock
        self.hosts = hosts
        self.settings = settings or SubscriptionSettings()

    async def create(self, principal: Principal, spec: NewSubscription) -> SubscriptionChanged:
        principal.require_scope(SCOPE_SUBSCRIBE)
        _check_callback(spec.callback_url)
        self.hosts.check_url(spec.callback_url, "callback_url")
        mode = spec.delivery_mode.strip() or "fanout"
        if mode not in DELIVERY_MODES:
            raise InvalidInput(f"invalid {FIELD}", field="delivery_mode")
        if mode == "group" and not spec.group_id.strip():
            raise InvalidInput(f"{FIELD} is required", field="group_id")
        interval = spec.min_interval_seconds
        if interval is None:
            interval = self.settings.default_min_interval_seconds
        elif interval < 0:
            raise InvalidInput(f"{FIELD} must not be negative", field="min_interval_seconds")
        now_ms = self.clock.now_ms()
        command = c.SubscriptionCreate(
            now_ms=now_ms,
            subscription_id=uuid4(),
            tenant=principal.tenant,
            subject=principal.subject,
            callback_url=spec.callback_url,
            event_types=_event_types(principal, spec.event_types),
            delivery_mode=mode,
            group_id=spec.group_id.strip() if mode == "group" else "",
            min_interval_seconds=interval,
            expires_ms=now_ms + self._ttl_ms(spec.ttl_seconds),
        )
        outcome = await self.node.shards[0].submit(command)
        return outcome

    async def heartbeat(self, principal: Principal, sub_id: str, ttl_seconds: int) -> SubscriptionChanged:
        principal.require_scope(SCOPE_SUBSCRIBE)
        now_ms = self.clock.now_ms()
        command = c.SubscriptionHeartbeat(
            now_ms=now_ms,
            subscription_id=sub_id,
            tenant=principal.tenant,
            subject=principal.subject,
            expires_ms=now_ms + self._ttl_ms(ttl_seconds),
        )
        outcome = await self.node.shards[0].submit(command)
        return outcome

    async def delete(self, principal: Principal, sub_id: str) -> None:
        principal.require_scope(SCOPE_SUBSCRIBE)
        command = c.SubscriptionDelete(
            now_ms=self.clock.now_ms(),
            subscription_id=sub_id,
            tenant=principal.tenant,
            subject=principal.subject,
        )
        await self.node.shards[0].submit(command)

    async def list(self, principal: Principal) -> list[Subscription]:
        """The caller's live subscriptions (spec 02 gap 11), read on shard 0, like topics'."""
        principal.require_scope(SCOPE_SUBSCRIBE)
        now_ms = self.clock.now_ms()
        found: list[Subscription] = await self.node.shards[0].read(
            "subscriptions_of", principal.tenant, principal.subject, now_ms
        )
        return found

    async def get(self, principal: Principal, sub_id: str) -> Subscription:
        principal.require_scope(SCOPE_SUBSCRIBE)
        now_ms = self.clock.now_ms()
        found: Subscription = await self.node.shards[0].read(
            "find_subscription", sub_id, principal.tenant, principal.subject, now_ms
        )
        return found

    async def cleanup_tick(self) -> int | None:
        """One pass of the expiry cleanup (leader of shard 0 only); for the background runner."""
        shard = self.node.shards[0]
        if self.node.runs_here(0):
            command = c.SubscriptionExpire(now_ms=self.clock.now_ms(), limit=self.settings.cleanup_limit)
            await shard.submit(command)
        return None

    def _ttl_ms(self, ttl_seconds: int) -> int:
        ttl = ttl_seconds if ttl_seconds > 0 else self.settings.default_ttl_seconds
        if ttl > self.settings.max_ttl_seconds:
            raise InvalidInput(
                f"{FIELD} must be at most {self.settings.max_ttl_seconds}", field="ttl_seconds"
            )
        return ttl * 1000


def _check_callback(url: str) -> None:
    if not url.strip():
        raise InvalidInput("invalid body", field="callback_url")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput("invalid callback url", field="callback_url") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput("invalid callback url", field="callback_url")


def _event_types(principal: Principal, requested: list[str]) -> list[str]:
    """The requested commands, each one the token may claim; none requested: the token's own."""
    if not requested:
        if not principal.event_types:
            raise InvalidInput(f"{FIELD} is required", field="event_types")
        return list(principal.event_types)
    chosen = []
    for name in requested:
        if name == WILDCARD:
            if WILDCARD not in principal.event_types:
                raise Forbidden("event type not allowed")
            chosen.append(name)
            continue
        command = validate_command(name)
        if not principal.allows_command(command):
            raise Forbidden("event type not allowed")
        chosen.append(command)
    return chosen
