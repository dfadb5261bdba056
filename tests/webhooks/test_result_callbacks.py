"""Result callbacks against a real local HTTP receiver: body, signature, retries, outbox."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from codeq.service.maintenance import Maintenance
from tests.api.conftest import WORKER, Api, make_settings, running
from tests.support.receiver import Receiver

SECRET = "s3cret"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    settings = make_settings(
        webhook_hmac_secret=SECRET, webhook_allow_hosts="127.0.0.1", timezone="America/Sao_Paulo"
    )
    async with running(settings) as api:
        yield api


async def _deliver(api: Api) -> None:
    """One delivery pass at the fake clock's current time, waiting for its attempts."""
    await api.app.callbacks.tick()
    await api.app.callbacks.drain()


async def _finish(api: Api, webhook: str, **result: Any) -> str:
    task_id = (await api.create(webhook=webhook))["id"]
    assert (await api.claim()).json()["id"] == task_id
    body = result or {"status": "COMPLETED", "result": {"answer": 42}}
    assert (await api.post(f"/tasks/{task_id}/result", body, WORKER)).status_code == 200
    return task_id


def _deliveries(api: Api, outcome: str) -> float:
    metric = api.app.metrics.webhook_deliveries.labels("task_result", "render", outcome)
    value: float = metric._value.get()
    return value


async def test_callback_body_and_signature(api: Api) -> None:
    with Receiver() as receiver:
        task_id = await _finish(api, receiver.url + "/hook")
        await _deliver(api)
        [got] = receiver.received
        assert got.path == "/hook" and got.headers["content-type"] == "application/json"
        body = json.loads(got.body)
        assert body == {
            "taskId": task_id,
            "eventType": "render",
            "status": "COMPLETED",
            "result": {"answer": 42},
            "error": "",
            "artifacts": None,
            "completedAt": body["completedAt"],
        }
        assert body["completedAt"].endswith("-03:00")  # the server's zone, like every timestamp
        timestamp = got.headers["x-codeq-timestamp"]
        assert int(timestamp) == api.clock.now_ms() // 1000
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + got.body, hashlib.sha256)
        assert got.headers["x-codeq-signature"] == expected.hexdigest()
        assert _deliveries(api, "success") == 1


async def test_three_failures_then_success_deliver_exactly_once(api: Api) -> None:
    with Receiver(script=[500, 503, 404]) as receiver:
        await _finish(api, receiver.url)
        await _deliver(api)
        for attempts, backoff_seconds in enumerate((2, 4, 8), start=1):  # min(2 · 2^(n−1), 60)
            api.clock.advance(backoff_seconds - 0.001)
            await _deliver(api)
            assert len(receiver.received) == attempts  # not yet due
            api.clock.advance(0.001)
            await _deliver(api)
        assert [r.status for r in receiver.received] == [500, 503, 404, 200]
        assert len({r.body for r in receiver.received}) == 1  # the same body every time
        for _ in range(3):
            api.clock.advance(3600)
            await _deliver(api)
        assert len(receiver.answered(200)) == 1 and len(receiver.received) == 4
        assert _deliveries(api, "success") == 1 and _deliveries(api, "failure") == 0
        assert all(not s.engine.outbox.entries for s in api.app.node.shards)
        text = (await api.client.get("/metrics")).text
        assert 'codeq_webhook_attempts_total{kind="task_result",outcome="failed"} 3.0' in text
        assert "codeq_webhook_outbox_pending 0.0" in text


async def test_gives_up_after_the_last_attempt(api: Api) -> None:
    with Receiver(default=500) as receiver:
        await _finish(api, receiver.url)
        for _ in range(8):
            await _deliver(api)
            api.clock.advance(60)
        assert len(receiver.received) == 5
        assert _deliveries(api, "failure") == 1


async def test_dead_letters_and_failures_call_back_too(api: Api) -> None:
    with Receiver() as receiver:
        failed = await _finish(api, receiver.url, status="FAILED", error="bad input")
        nacked = (await api.create(webhook=receiver.url, maxAttempts=1))["id"]
        await api.claim()
        await api.post(f"/tasks/{nacked}/nack", {"reason": "gave up"}, WORKER)
        expired = (await api.create(webhook=receiver.url, maxAttempts=1))["id"]
        await api.claim(leaseSeconds=10)
        api.clock.advance(11)
        await Maintenance(api.app.node, api.clock).tick()
        await _deliver(api)
        bodies = {json.loads(r.body)["taskId"]: json.loads(r.body) for r in receiver.received}
        assert bodies[failed]["status"] == "FAILED" and bodies[failed]["error"] == "bad input"
        assert bodies[failed]["result"] is None
        assert bodies[nacked]["status"] == "FAILED" and bodies[nacked]["error"] == "gave up"
        assert bodies[expired]["error"] == "LEASE_EXPIRED"


async def test_private_and_listed_hosts_are_refused(api: Api) -> None:
    for url in ("http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x", "http://localhost/"):
        response = await api.post("/tasks", {"command": "render", "payload": {}, "webhook": url})
        assert response.status_code == 400, url
        assert response.json()["field"] == "webhook"


class HeldPoster:
    """Answers only when released, so a test can see how many attempts run at once."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.started.append(json.loads(body)["taskId"])
        await self.release.wait()
        return 200

    async def aclose(self) -> None:
        pass


async def test_attempts_in_flight_are_bounded_and_each_entry_is_sent_once(api: Api) -> None:
    callbacks = api.app.callbacks
    assert callbacks is not None
    poster = HeldPoster()
    callbacks.poster = poster
    callbacks.settings = dataclasses.replace(callbacks.settings, concurrency=2)
    ids = [await _finish(api, "http://127.0.0.1:9/x") for _ in range(5)]
    for _ in range(3):
        await callbacks.tick()
        await asyncio.sleep(0)
    assert len(poster.started) == 2  # two slots, the rest wait in the outbox
    poster.release.set()
    for _ in range(10):
        await callbacks.tick()
        await callbacks.drain()
    assert sorted(poster.started) == sorted(ids)  # each once, none twice
    assert all(not s.engine.outbox.entries for s in api.app.node.shards)


async def test_the_webhook_bucket_holds_callbacks_back_without_spending_attempts() -> None:
    limits = {"rate_limit.webhook_requests_per_minute": 60, "rate_limit.webhook_burst_size": 1}
    settings = make_settings(webhook_allow_hosts="127.0.0.1", **limits)
    async with running(settings) as api:
        with Receiver() as receiver:
            await _finish(api, receiver.url)
            await _finish(api, receiver.url)
            await _deliver(api)
            assert len(receiver.received) == 1  # one token: the other waits a second
            api.clock.advance(0.999)
            await _deliver(api)
            assert len(receiver.received) == 1
            api.clock.advance(0.001)
            await _deliver(api)
            assert [r.status for r in receiver.received] == [200, 200]
            text = (await api.client.get("/metrics")).text
            assert 'codeq_rate_limit_hits_total{operation="task_result",scope="webhook"} 1.0' in text
            assert 'codeq_webhook_attempts_total{kind="task_result",outcome="failed"}' not in text
