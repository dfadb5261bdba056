"""Subscriptions through the SDK against a live server: create, renew, delete."""

from __future__ import annotations

import pytest

from codeq.client import AsyncAdmin, NotFound, Subscription
from tests.sdk.conftest import WORKER_TOKEN
from tests.sdk.live import LiveServer, sdk_settings


async def test_subscribe_renew_and_unsubscribe() -> None:
    server = LiveServer(sdk_settings(WEBHOOK_ALLOW_HOSTS="127.0.0.1"))
    await server.start()
    try:
        await _round_trip(server)
    finally:
        await server.stop()


async def _round_trip(server: LiveServer) -> None:
    async with AsyncAdmin(server.url, WORKER_TOKEN) as admin:
        made = await admin.subscribe("http://127.0.0.1:9/ready", event_types=["render"], ttl_seconds=60)
        assert isinstance(made, Subscription) and made.subscription_id and made.expires_at
        renewed = await admin.renew_subscription(made.subscription_id, ttl_seconds=120)
        assert renewed.subscription_id == made.subscription_id and renewed.expires_at > made.expires_at
        await admin.unsubscribe(made.subscription_id)
        with pytest.raises(NotFound):
            await admin.renew_subscription(made.subscription_id)
