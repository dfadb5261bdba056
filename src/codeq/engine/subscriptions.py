"""Worker subscriptions (spec 01 §9): stored on shard 0, indexed in memory by tenant and command.

A subscription belongs to the tenant and subject that created it (spec 01 gap 8): only they
may renew or delete it, and it hears only about its own tenant's queues. Expired ones are
ignored at once by `active` and removed from the store by `SubscriptionExpire`.
"""

from __future__ import annotations

import msgspec

from codeq.core.errors import NotFound
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine import keys
from codeq.engine.context import ApplyContext, Reader
from codeq.engine.outcomes import SubscriptionChanged

ANY_COMMAND = "*"


class Subscription(msgspec.Struct, array_like=True, frozen=True):
    """Field order is the on-disk format: append new fields at the end."""

    id: str
    tenant: str
    subject: str
    callback_url: str
    event_types: list[str]  # command keys, or ["*"]
    delivery_mode: str  # fanout | group | hash
    group_id: str
    min_interval_seconds: int
    created_ms: int
    expires_ms: int

    def hears(self, cmd_key: str) -> bool:
        return ANY_COMMAND in self.event_types or cmd_key in self.event_types


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Subscription).decode


class Registry:
    """The subscriptions of this shard by id, and by tenant."""

    def __init__(self) -> None:
        self.by_id: dict[str, Subscription] = {}
        self.by_tenant: dict[str, set[str]] = {}

    def load(self, store: Reader) -> None:
        self.by_id, self.by_tenant = {}, {}
        for _, raw in store.scan(keys.SUBSCRIPTION, keys.SUBSCRIPTION_END):
            self.put(_decode(raw))

    def active(self, tenant: str, cmd_key: str, now_ms: int) -> list[Subscription]:
        """Live subscriptions of `tenant` that hear about `cmd_key`, in id order."""
        found = []
        for sub_id in self.by_tenant.get(tenant, ()):
            sub = self.by_id[sub_id]
            if sub.expires_ms >= now_ms and sub.hears(cmd_key):
                found.append(sub)
        return sorted(found, key=lambda s: s.id)

    def owned_by(self, tenant: str, subject: str, now_ms: int) -> list[Subscription]:
        """The live subscriptions `subject` made in `tenant`, in id order."""
        found = (self.by_id[sub_id] for sub_id in self.by_tenant.get(tenant, ()))
        live = (s for s in found if s.subject == subject and s.expires_ms >= now_ms)
        return sorted(live, key=lambda s: s.id)

    def find(self, sub_id: str, tenant: str, subject: str, now_ms: int) -> Subscription:
        """One live subscription of `subject` in `tenant`; anyone else's does not exist."""
        return self._owned(sub_id, tenant, subject, now_ms)

    def put(self, sub: Subscription) -> None:
        self.by_id[sub.id] = sub
        self.by_tenant.setdefault(sub.tenant, set()).add(sub.id)

    def drop(self, sub: Subscription) -> None:
        self.by_id.pop(sub.id, None)
        self.by_tenant.get(sub.tenant, set()).discard(sub.id)

    def create(self, ctx: ApplyContext, cmd: c.SubscriptionCreate) -> SubscriptionChanged:
        existing = self.by_id.get(cmd.subscription_id)
        if existing is not None:  # the same command applied again (a retried proposal)
            return SubscriptionChanged(existing.id, existing.expires_ms)
        sub = Subscription(
            id=cmd.subscription_id,
            tenant=cmd.tenant,
            subject=cmd.subject,
            callback_url=cmd.callback_url,
            event_types=sorted({e if e == ANY_COMMAND else command_key(e) for e in cmd.event_types}),
            delivery_mode=cmd.delivery_mode,
            group_id=cmd.group_id,
            min_interval_seconds=cmd.min_interval_seconds,
            created_ms=cmd.now_ms,
            expires_ms=cmd.expires_ms,
        )
        self._store(ctx, sub, previous=None)
        return SubscriptionChanged(sub.id, sub.expires_ms)

    def heartbeat(self, ctx: ApplyContext, cmd: c.SubscriptionHeartbeat) -> SubscriptionChanged:
        sub = self._owned(cmd.subscription_id, cmd.tenant, cmd.subject, cmd.now_ms)
        renewed = msgspec.structs.replace(sub, expires_ms=cmd.expires_ms)
        self._store(ctx, renewed, previous=sub)
        return SubscriptionChanged(sub.id, renewed.expires_ms)

    def delete(self, ctx: ApplyContext, cmd: c.SubscriptionDelete) -> SubscriptionChanged:
        sub = self._owned(cmd.subscription_id, cmd.tenant, cmd.subject, cmd.now_ms)
        self._remove(ctx, sub)
        return SubscriptionChanged(sub.id, 0)

    def expire(self, ctx: ApplyContext, cmd: c.SubscriptionExpire) -> SubscriptionChanged:
        """Remove up to `limit` subscriptions that expired before `now_ms`."""
        upper = keys.subscription_expiry(cmd.now_ms, "")
        due = list(ctx.scan(keys.SUBSCRIPTION_EXPIRY, upper, cmd.limit))
        removed = 0
        for key, _ in due:
            expires_ms, sub_id = keys.split_subscription_expiry(key)
            ctx.stage(key, None)
            sub = self.by_id.get(sub_id)
            if sub is not None and sub.expires_ms == expires_ms:
                self._remove(ctx, sub)
                removed += 1
        return SubscriptionChanged("", 0, removed=removed)

    def _owned(self, sub_id: str, tenant: str, subject: str, now_ms: int) -> Subscription:
        sub = self.by_id.get(sub_id)
        if sub is None or sub.tenant != tenant or sub.subject != subject or sub.expires_ms < now_ms:
            raise NotFound("not-found")
        return sub

    def _store(self, ctx: ApplyContext, sub: Subscription, previous: Subscription | None) -> None:
        if previous is not None:
            ctx.stage(keys.subscription_expiry(previous.expires_ms, previous.id), None)
        self.put(sub)
        ctx.stage(keys.subscription(sub.id), _encode(sub))
        ctx.stage(keys.subscription_expiry(sub.expires_ms, sub.id), b"")

    def _remove(self, ctx: ApplyContext, sub: Subscription) -> None:
        self.drop(sub)
        ctx.stage(keys.subscription(sub.id), None)
        ctx.stage(keys.subscription_expiry(sub.expires_ms, sub.id), None)
