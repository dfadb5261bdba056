"""`webhookSignaturePerTenant`: each tenant's webhooks are signed with a key derived for it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest

from tests.api.conftest import OTHER_PRODUCER, OTHER_WORKER, PRODUCER, WORKER, Api, make_settings, running
from tests.support.receiver import Received, Receiver

SECRET = "operator-secret"


def tenant_key(tenant: str) -> bytes:
    """What the README tells a receiver: hex HMAC-SHA256(secret, "codeq-tenant:<tenant>")."""
    return hmac.new(SECRET.encode(), f"codeq-tenant:{tenant}".encode(), hashlib.sha256).hexdigest().encode()


def verifies(got: Received, key: bytes) -> bool:
    signed = got.headers["x-codeq-timestamp"].encode() + b"." + got.body
    expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, got.headers["x-codeq-signature"])


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    settings = make_settings(
        webhook_hmac_secret=SECRET, webhook_signature_per_tenant=True, webhook_allow_hosts="127.0.0.1"
    )
    async with running(settings) as api:
        yield api


async def finish(api: Api, url: str, producer: dict[str, str], worker: dict[str, str]) -> None:
    body = {"command": "render", "payload": {}, "webhook": url}
    created = await api.post("/tasks", body, producer)
    assert created.status_code == 202, created.text
    claimed = await api.post("/tasks/claim", {}, worker)
    assert claimed.json()["id"] == created.json()["id"]
    done = {"status": "COMPLETED", "result": {}}
    assert (await api.post(f"/tasks/{created.json()['id']}/result", done, worker)).status_code == 200


async def test_a_tenants_signature_is_worthless_at_another_tenants_receiver(api: Api) -> None:
    with Receiver() as receiver:
        await finish(api, receiver.url + "/dev", PRODUCER, WORKER)
        await finish(api, receiver.url + "/globex", OTHER_PRODUCER, OTHER_WORKER)
        await api.app.callbacks.tick()
        await api.app.callbacks.drain()
        got = {r.path: r for r in receiver.received}
        assert sorted(got) == ["/dev", "/globex"]
        assert verifies(got["/dev"], tenant_key("dev"))
        assert verifies(got["/globex"], tenant_key("globex"))
        assert not verifies(got["/dev"], tenant_key("globex"))
        assert not verifies(got["/globex"], tenant_key("dev"))
        # The shared secret itself verifies nothing: no receiver needs to hold it.
        assert not verifies(got["/dev"], SECRET.encode())


async def test_queue_ready_notifications_use_the_tenant_key(api: Api) -> None:
    with Receiver() as receiver:
        body = {"callbackUrl": receiver.url + "/ready", "eventTypes": ["render"], "minIntervalSeconds": 0}
        assert (await api.post("/workers/subscriptions", body, OTHER_WORKER)).status_code == 200
        assert (
            await api.post("/tasks", {"command": "render", "payload": {}}, OTHER_PRODUCER)
        ).status_code == 202
        await api.app.notifier.tick()
        await api.app.notifier.drain()
        [got] = receiver.received
        assert verifies(got, tenant_key("globex")) and not verifies(got, tenant_key("dev"))
