"""Durable schedules through HTTP: admin routes, and slots fired on the fake clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from codeq.core.clock import FakeClock
from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, PRODUCER, Api, make_settings, running

PATH = "/v1/codeq/admin/schedules"
EVERY_MINUTE = {"command": "report", "payload": {"kind": "daily"}, "everySeconds": 60, "priority": 3}


async def put(api: Api, name: str, body: Any, headers: dict[str, str] = PRODUCER) -> httpx.Response:
    return await api.client.put(f"{PATH}/{name}", content=json.dumps(body).encode(), headers=headers)


async def tasks(api: Api, command: str = "report") -> list[dict[str, Any]]:
    response = await api.get(f"/admin/queues/{command}/tasks", params={"state": "ready", "limit": 100})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["tasks"]
    return found


async def fire(api: Api, seconds: float) -> None:
    """Move the fake clock on and run one firing pass, as the runner would."""
    api.clock.advance(seconds)
    schedules = api.app.services.schedules
    assert schedules is not None
    await schedules.tick()


def start_on_a_minute(api: Api) -> None:
    api.clock.advance(60 - (api.clock.now_ms() // 1000) % 60 + 1)  # one second past a slot


async def test_put_get_list_delete(api: Api) -> None:
    created = await put(api, "nightly", EVERY_MINUTE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "nightly" and body["tenantId"] == "dev" and body["payload"] == {"kind": "daily"}
    assert body["everySeconds"] == 60 and body["catchUp"] == "skip" and body["version"] == 1
    assert body["lastSlotAt"] == ""
    same = await put(api, "nightly", EVERY_MINUTE)
    assert same.status_code == 200 and same.json() == body
    changed = await put(api, "nightly", {**EVERY_MINUTE, "everySeconds": 120})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert (await api.client.get(f"{PATH}/nightly", headers=PRODUCER)).json() == changed.json()
    listed = await api.client.get(PATH, headers=PRODUCER)
    assert [s["name"] for s in listed.json()["schedules"]] == ["nightly"]
    other = await api.client.get(PATH, headers=OTHER_PRODUCER)  # another tenant sees none
    assert other.json() == {"schedules": []}
    assert (await api.client.delete(f"{PATH}/nightly", headers=PRODUCER)).status_code == 204
    assert (await api.client.get(f"{PATH}/nightly", headers=PRODUCER)).status_code == 404
    assert (await api.client.delete(f"{PATH}/nightly", headers=PRODUCER)).status_code == 204


async def test_validation_and_admin_only(api: Api) -> None:
    assert (await put(api, "n", EVERY_MINUTE, headers=PLAIN_PRODUCER)).status_code == 403
    both = await put(api, "n", {**EVERY_MINUTE, "cron": "* * * * *"})
    assert both.status_code == 422 and both.json()["field"] == "cron"
    bad_cron = await put(api, "n", {"command": "report", "payload": 1, "cron": "61 * * * *"})
    assert bad_cron.status_code == 422 and bad_cron.json()["field"] == "cron"
    zoned = {"command": "report", "payload": 1, "cron": "0 * * * *", "timezone": "Mars/Base"}
    bad_zone = await put(api, "n", zoned)
    assert bad_zone.status_code == 422 and bad_zone.json()["field"] == "timezone"
    bad_policy = await put(api, "n", {**EVERY_MINUTE, "catchUp": "all"})
    assert bad_policy.status_code == 422 and bad_policy.json()["field"] == "catchUp"
    assert (await put(api, "Bad_Name", EVERY_MINUTE)).status_code == 422
    assert (await put(api, "n", {**EVERY_MINUTE, "priority": 99})).json()["field"] == "priority"
    assert (await put(api, "n", {**EVERY_MINUTE, "maxAttempts": 10**6})).json()["field"] == "maxAttempts"
    huge = await put(api, "n", {**EVERY_MINUTE, "payload": "x" * 600_000})  # under the body limit
    assert huge.status_code == 413 and huge.json()["field"] == "payload", huge.text
    assert (await put(api, "n", {**EVERY_MINUTE, "extra": 1})).status_code == 400


async def test_every_seconds_fires_each_slot_once(api: Api) -> None:
    start_on_a_minute(api)
    await put(api, "nightly", EVERY_MINUTE)
    await fire(api, 30)
    assert await tasks(api) == []  # the next slot has not come yet
    await fire(api, 30)
    first = await tasks(api)
    assert len(first) == 1 and first[0]["priority"] == 3
    await fire(api, 1)
    assert len(await tasks(api)) == 1  # the same slot never fires twice
    await fire(api, 59)
    assert len(await tasks(api)) == 2
    schedule = (await api.client.get(f"{PATH}/nightly", headers=PRODUCER)).json()
    assert schedule["lastSlotAt"] != ""


async def test_catch_up_skip_fires_only_the_current_slot(api: Api) -> None:
    start_on_a_minute(api)
    await put(api, "nightly", EVERY_MINUTE)
    await fire(api, 10 * 60)  # ten slots passed with no firing
    assert len(await tasks(api)) == 1


async def test_catch_up_once_fires_the_latest_missed_slot_too(api: Api) -> None:
    start_on_a_minute(api)
    await put(api, "nightly", {**EVERY_MINUTE, "catchUp": "once"})
    await fire(api, 10 * 60)
    assert len(await tasks(api)) == 2  # the latest missed slot, then the current one
    await fire(api, 60)
    assert len(await tasks(api)) == 3  # then on as usual


async def test_cron_in_a_time_zone(api: Api) -> None:
    start_on_a_minute(api)
    body = {"command": "report", "payload": {}, "cron": "*/5 * * * *", "timezone": "Asia/Kolkata"}
    assert (await put(api, "five", body)).status_code == 201
    for _ in range(10):
        await fire(api, 60)
    assert len(await tasks(api)) == 2  # ten minutes hold two five-minute marks


async def test_deleted_schedule_stops_firing(api: Api) -> None:
    start_on_a_minute(api)
    await put(api, "nightly", EVERY_MINUTE)
    await fire(api, 60)
    await api.client.delete(f"{PATH}/nightly", headers=PRODUCER)
    await fire(api, 600)
    assert len(await tasks(api)) == 1


async def test_schedule_and_its_last_slot_survive_a_restart(tmp_path: Path) -> None:
    """The schedule and the slot it last fired are in the durable store: a restarted node
    resumes after that slot, neither firing it again nor losing the schedule."""
    settings = make_settings(provider="embedded", data_path=str(tmp_path / "data"))
    clock = FakeClock()
    clock.advance(61)
    async with running(settings, clock) as api:
        await put(api, "nightly", EVERY_MINUTE)
        await fire(api, 60)
        assert len(await tasks(api)) == 1
    async with running(settings, clock) as api:
        assert (await api.client.get(f"{PATH}/nightly", headers=PRODUCER)).json()["lastSlotAt"] != ""
        await fire(api, 1)
        assert len(await tasks(api)) == 1  # the recorded slot is not fired again
        await fire(api, 60)
        assert len(await tasks(api)) == 2
