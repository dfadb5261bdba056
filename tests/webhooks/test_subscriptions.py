"""Subscriptions and the notifier against a real local receiver: modes, throttling, expiry."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.conftest import (
    NARROW_WORKER,
    OTHER_PRODUCER,
    OTHER_WORKER,
    WORKER,
    Api,
    make_settings,
    running,
)
from tests.support.receiver import Receiver

SECRET = "sub-secret"


@pytest.fixture(params=[1, 3], ids=["1-shard", "3-shards"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    settings = make_settings(
        num_shards=request.param, webhook_hmac_secret=SECRET, webhook_allow_hosts="127.0.0.1"
    )
    async with running(settings) as api:
        yield api


async def subscribe(api: Api, url: str, headers: dict[str, str] | None = None, **fields: Any) -> str:
    body = {"callbackUrl": url, "eventTypes": ["render"], "minIntervalSeconds": 0, **fields}
    response = await api.post("/workers/subscriptions", body, headers or WORKER)
    assert response.status_code == 200, response.text
    sub_id: str = response.json()["subscriptionId"]
    return sub_id


async def notify(api: Api) -> None:
    await api.app.notifier.tick()
    await api.app.notifier.drain()


async def create_and_notify(api: Api, command: str = "render", headers: dict[str, str] | None = None) -> None:
    response = await api.post("/tasks", {"command": command, "payload": {}}, headers)
    assert response.status_code == 202, response.text
    await notify(api)


def paths(receiver: Receiver) -> list[str]:
    return [r.path for r in receiver.received]


async def test_fanout_notifies_every_subscriber_with_a_signed_body(api: Api) -> None:
    with Receiver() as receiver:
        first = await subscribe(api, receiver.url + "/a")
        await subscribe(api, receiver.url + "/b", deliveryMode="fanout")
        await create_and_notify(api)
        assert sorted(paths(receiver)) == ["/a", "/b"]
        got = next(r for r in receiver.received if r.path == "/a")
        body = json.loads(got.body)
        assert body == {
            "eventType": "render",
            "available": True,
            "queueDepth": 1,
            "claimUrl": "/v1/codeq/tasks/claim",
            "sentAt": body["sentAt"],
            "notificationId": f"ntf-{first}",
        }
        assert body["sentAt"].endswith("Z")
        stamp = got.headers["x-codeq-timestamp"]
        expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-codeq-signature"] == expected
        await create_and_notify(api, "other-command")
        assert len(receiver.received) == 2  # nobody listens to other-command


async def test_throttling_holds_back_notifications_inside_the_interval(api: Api) -> None:
    with Receiver() as receiver:
        await subscribe(api, receiver.url, minIntervalSeconds=10)
        await create_and_notify(api)
        await create_and_notify(api)
        api.clock.advance(9.999)
        await create_and_notify(api)
        assert len(receiver.received) == 1
        api.clock.advance(0.001)
        await create_and_notify(api)
        assert len(receiver.received) == 2


async def test_group_members_take_turns_and_a_throttled_member_is_skipped(api: Api) -> None:
    with Receiver() as receiver:
        for name in ("a", "b", "c"):
            await subscribe(
                api, f"{receiver.url}/{name}", deliveryMode="group", groupId="g1", minIntervalSeconds=5
            )
        await subscribe(api, f"{receiver.url}/solo", deliveryMode="group", groupId="g2")
        for _ in range(3):
            await create_and_notify(api)
            api.clock.advance(1)
        group = [p for p in paths(receiver) if p != "/solo"]
        # Every member of the group heard once (the reference only ever notified the first).
        assert sorted(group) == ["/a", "/b", "/c"]
        assert paths(receiver).count("/solo") == 3
        await create_and_notify(api)  # all three still inside their 5 s: the group is skipped
        assert len([p for p in paths(receiver) if p != "/solo"]) == 3
        api.clock.advance(2)  # the first one's interval is over
        await create_and_notify(api)
        assert [p for p in paths(receiver) if p != "/solo"][-1] == group[0]


async def test_hash_mode_gives_each_command_one_owner(api: Api) -> None:
    with Receiver() as receiver:
        names = ["a", "b", "c"]
        for name in names:
            await subscribe(api, f"{receiver.url}/{name}", deliveryMode="hash", eventTypes=["*"])
        commands = [f"cmd-{i}" for i in range(12)]
        for _ in range(2):
            for command in commands:
                before = len(receiver.received)
                await create_and_notify(api, command)
                assert len(receiver.received) == before + 1
        owners: dict[str, set[str]] = {}
        for received in receiver.received:
            owners.setdefault(json.loads(received.body)["eventType"], set()).add(received.path)
        assert all(len(paths_) == 1 for paths_ in owners.values())  # stable owner per command
        assert len(Counter(next(iter(p)) for p in owners.values())) > 1  # spread over subscribers


async def test_expiry_heartbeat_delete_and_cleanup(api: Api) -> None:
    with Receiver() as receiver:
        kept = await subscribe(api, receiver.url + "/kept", ttlSeconds=30)
        lapsed = await subscribe(api, receiver.url + "/lapsed", ttlSeconds=30)
        api.clock.advance(20)
        renewed = await api.post(f"/workers/subscriptions/{kept}/heartbeat", {"ttlSeconds": 60}, WORKER)
        assert renewed.status_code == 200 and renewed.json()["subscriptionId"] == kept
        api.clock.advance(11)  # `lapsed` expired a second ago
        await create_and_notify(api)
        assert paths(receiver) == ["/kept"]
        gone = await api.post(f"/workers/subscriptions/{lapsed}/heartbeat", {}, WORKER)
        assert gone.status_code == 404 and gone.json() == {"error": "not-found"}
        registry = api.app.node.shards[0].engine.subscriptions
        assert lapsed in registry.by_id
        await api.app.services.subscriptions.cleanup_tick()
        assert lapsed not in registry.by_id and kept in registry.by_id
        # Only its owner may delete it; then it is gone.
        assert (
            await api.client.delete(f"/v1/codeq/workers/subscriptions/{kept}", headers=OTHER_WORKER)
        ).status_code == 404
        assert (
            await api.client.delete(f"/v1/codeq/workers/subscriptions/{kept}", headers=WORKER)
        ).status_code == 204
        await create_and_notify(api)
        assert paths(receiver) == ["/kept"]


async def test_notifications_stay_in_the_tenant_and_follow_promotions(api: Api) -> None:
    with Receiver() as receiver:
        await subscribe(api, receiver.url + "/globex", OTHER_WORKER)
        await create_and_notify(api)  # tenant dev: globex hears nothing
        assert receiver.received == []
        await create_and_notify(api, headers=OTHER_PRODUCER)
        assert paths(receiver) == ["/globex"]
        await api.post("/tasks", {"command": "render", "payload": {}, "delaySeconds": 30}, OTHER_PRODUCER)
        await api.app.notifier.tick()
        api.clock.advance(31)
        from codeq.service.maintenance import Maintenance

        await Maintenance(api.app.node, api.clock).tick()  # promotes the delayed task
        await notify(api)
        assert paths(receiver) == ["/globex", "/globex"]


async def test_subscription_input_is_validated(api: Api) -> None:
    async def refused(body: dict[str, Any], headers: dict[str, str] = WORKER) -> dict[str, Any]:
        response = await api.post("/workers/subscriptions", body, headers)
        assert response.status_code in (400, 403), response.text
        result: dict[str, Any] = response.json()
        return result

    url = "http://127.0.0.1:9/x"
    assert (await refused({"eventTypes": ["render"]}))["field"] == "callbackUrl"
    assert (await refused({"callbackUrl": "ftp://x/y"}))["error"] == "invalid callback url"
    assert (await refused({"callbackUrl": "http://10.0.0.1/x"}))["field"] == "callbackUrl"
    assert (await refused({"callbackUrl": url, "deliveryMode": "broadcast"}))[
        "error"
    ] == "invalid deliveryMode"
    assert (await refused({"callbackUrl": url, "deliveryMode": "group"}))["error"] == "groupId is required"
    assert (await refused({"callbackUrl": url, "ttlSeconds": 10**9}))["field"] == "ttlSeconds"
    assert (await refused({"callbackUrl": url, "minIntervalSeconds": -1}))["field"] == "minIntervalSeconds"
    assert (await refused({"callbackUrl": url}, NARROW_WORKER))["error"] == "missing scope"
    assert (await refused({"callbackUrl": url, "eventTypes": ["bad command!"]}))["error"] == "invalid command"


async def test_throttle_times_of_removed_subscriptions_are_forgotten(api: Api) -> None:
    notifier = api.app.notifier
    assert notifier is not None
    with Receiver() as receiver:
        kept = await subscribe(api, receiver.url, minIntervalSeconds=60)
        await create_and_notify(api)
        notifier._last_sent_ms.update({f"gone-{n}": 0 for n in range(1100)})
        await notify(api)
        assert set(notifier._last_sent_ms) == {kept}
        await create_and_notify(api)  # still throttled: its own time was kept
        assert len(receiver.received) == 1


async def test_the_webhook_bucket_drops_notifications_over_the_rate() -> None:
    limits = {"rate_limit.webhook_requests_per_minute": 60, "rate_limit.webhook_burst_size": 1}
    settings = make_settings(webhook_allow_hosts="127.0.0.1", **limits)
    async with running(settings) as api:
        with Receiver() as receiver:
            await subscribe(api, receiver.url)
            await create_and_notify(api)
            await create_and_notify(api)  # no token left for this URL: dropped, not queued
            assert len(receiver.received) == 1
            api.clock.advance(1)
            await create_and_notify(api)
            assert len(receiver.received) == 2
