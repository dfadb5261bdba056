"""The SDK finds a worker's queue-ready subscriptions again (issue 17 item 6)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from codeq.client import Admin, AsyncAdmin, NotFound
from tests.sdk.conftest import WORKER_TOKEN
from tests.sdk.live import LiveServer

HOOK = {"callbackUrl": "https://hooks.example.com/ready", "eventTypes": ["render"], "ttlSeconds": 60}


async def test_admin_lists_and_reads_the_callers_subscriptions(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        made = await http.post(
            "/v1/codeq/workers/subscriptions", json=HOOK, headers={"Authorization": f"Bearer {WORKER_TOKEN}"}
        )
    sub_id = made.json()["subscriptionId"]
    async with AsyncAdmin(server.url, WORKER_TOKEN) as admin:
        [listed] = await admin.subscriptions()
        assert (listed.subscription_id, listed.callback_url) == (sub_id, HOOK["callbackUrl"])
        assert await admin.subscription(sub_id) == listed
        with pytest.raises(NotFound):
            await admin.subscription("no-such-subscription")

    def blocking() -> None:  # on a thread: the server runs on this test's loop
        with Admin(server.url, WORKER_TOKEN) as admin:
            assert [s.subscription_id for s in admin.subscriptions()] == [sub_id]

    await asyncio.to_thread(blocking)
