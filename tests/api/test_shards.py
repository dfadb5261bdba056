"""numShards on the embedded store: N directories, FNV-1a routing, restart keeps everything."""

from __future__ import annotations

from pathlib import Path

import httpx

from codeq.app import App
from codeq.core.clock import FakeClock
from codeq.engine.shards import fnv1a64, new_task_id, shard_of
from tests.api.conftest import PRODUCER, WORKER, make_settings


def test_fnv1a64_matches_the_reference_vectors() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_an_idempotent_task_lives_on_its_keys_shard() -> None:
    ids = {new_task_id(4, tenant="dev", idempotency_key="job-7") for _ in range(20)}
    assert len({shard_of(task_id, 4) for task_id in ids}) == 1


async def test_four_shards_on_disk_route_claim_and_recover(tmp_path: Path) -> None:
    settings = make_settings(provider="embedded", data_path=str(tmp_path / "data"), num_shards=4)
    created: set[str] = set()
    app = App(settings, clock=FakeClock())
    await app.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.asgi), base_url="http://t") as client:
        for i in range(40):
            r = await client.post("/v1/codeq/tasks", json={"command": "c", "payload": i}, headers=PRODUCER)
            created.add(r.json()["id"])
    assert {shard_of(task_id, 4) for task_id in created} == {0, 1, 2, 3}
    await app.stop()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["shard0", "shard1", "shard2", "shard3"]

    app = App(settings, clock=FakeClock())
    await app.start()
    assert app.report.live_tasks == 40
    claimed: set[str] = set()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.asgi), base_url="http://t") as client:
        stats = (await client.get("/v1/codeq/admin/queues/c", headers=PRODUCER)).json()
        assert stats["ready"] == 40
        while (
            r := await client.post("/v1/codeq/tasks/claim/batch", json={"count": 10}, headers=WORKER)
        ).status_code == 200:
            claimed.update(task["id"] for task in r.json()["tasks"])
    assert claimed == created
    await app.stop()
