"""Dead-letter tools: list with paging, requeue (attempts reset, claimable again), purge."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, WORKER, Api


async def _dead_letter(api: Api, count: int, command: str = "render") -> list[str]:
    ids = []
    for _ in range(count):
        ids.append((await api.create(command, maxAttempts=1))["id"])
    for _ in range(count):
        claimed = (await api.claim(commands=[command])).json()
        nack = await api.post(f"/tasks/{claimed['id']}/nack", {"reason": "boom"}, WORKER)
        assert nack.json()["status"] == "dlq"
    return sorted(ids)


async def _dlq(api: Api, command: str = "render", **params: Any) -> dict[str, Any]:
    response = await api.get(f"/admin/dlq/{command}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_list_pages_through_the_dlq_in_id_order(api: Api) -> None:
    ids = await _dead_letter(api, 5)
    first = await _dlq(api, limit=2)
    assert [t["id"] for t in first["tasks"]] == ids[:2]
    assert first["tasks"][0]["status"] == "FAILED" and first["tasks"][0]["error"] == "boom"
    assert first["tasks"][0]["lastKnownLocation"] == "DLQ_SET"
    second = await _dlq(api, limit=2, after=first["nextAfter"])
    assert [t["id"] for t in second["tasks"]] == ids[2:4]
    last = await _dlq(api, limit=2, after=second["nextAfter"])
    assert [t["id"] for t in last["tasks"]] == ids[4:] and "nextAfter" not in last
    # Other tenants and other commands see none of it.
    assert (await api.get("/admin/dlq/render", OTHER_PRODUCER)).json()["tasks"] == []
    assert (await _dlq(api, "other"))["tasks"] == []


async def test_requeue_one_makes_it_claimable_with_attempts_reset(api: Api) -> None:
    ids = await _dead_letter(api, 2)
    response = await api.post("/admin/dlq/render/requeue", {"taskIds": [ids[0], "no-such-task"]})
    assert response.json() == {"command": "render", "requeued": 1}
    task = (await api.get(f"/tasks/{ids[0]}")).json()
    assert task["status"] == "PENDING" and task.get("attempts", 0) == 0 and "error" not in task
    assert (await api.get(f"/tasks/{ids[0]}/result")).json() == {"error": "result not found"}
    claimed = (await api.claim()).json()
    assert claimed["id"] == ids[0] and claimed["attempts"] == 1
    stats = (await api.get("/admin/queues/render")).json()
    assert stats["dlq"] == 1 and stats["inProgress"] == 1
    # Finishing it again works and its result is the new one.
    await api.post(f"/tasks/{ids[0]}/result", {"status": "COMPLETED", "result": {"ok": 1}}, WORKER)
    assert (await api.get(f"/tasks/{ids[0]}/result")).json()["result"]["status"] == "COMPLETED"


async def test_requeue_all_and_purge_all(api: Api) -> None:
    await _dead_letter(api, 3)
    other = await _dead_letter(api, 2, "mail")
    response = await api.post("/admin/dlq/render/requeue", {"all": True})
    assert response.json()["requeued"] == 3
    assert (await _dlq(api))["tasks"] == []
    assert (await api.get("/admin/queues/render")).json()["ready"] == 3
    purged = await api.post("/admin/dlq/mail/purge", {"all": True})
    assert purged.json() == {"command": "mail", "purged": 2}
    for task_id in other:
        assert (await api.get(f"/tasks/{task_id}")).status_code == 404
    assert (await api.get("/admin/queues/mail")).json()["dlq"] == 0


async def test_purge_by_id_leaves_the_rest(api: Api) -> None:
    ids = await _dead_letter(api, 3)
    response = await api.post("/admin/dlq/render/purge", {"taskIds": [ids[1]]})
    assert response.json()["purged"] == 1
    assert [t["id"] for t in (await _dlq(api))["tasks"]] == [ids[0], ids[2]]
    assert (await api.get("/admin/queues/render")).json()["dlq"] == 2


async def test_dlq_routes_validate_and_need_an_admin(api: Api) -> None:
    assert (await api.get("/admin/dlq/render", PLAIN_PRODUCER)).status_code == 403
    assert (await api.post("/admin/dlq/render/purge", {"all": True}, WORKER)).status_code == 401
    neither = await api.post("/admin/dlq/render/requeue", {})
    assert neither.status_code == 400 and neither.json()["field"] == "taskIds"
    both = await api.post("/admin/dlq/render/requeue", {"taskIds": ["x"], "all": True})
    assert both.status_code == 400
    bad_limit = await api.get("/admin/dlq/render", params={"limit": "-1"})
    assert bad_limit.status_code == 400 and bad_limit.json()["field"] == "limit"
    too_many = await api.get("/admin/dlq/render", params={"limit": "501"})
    assert too_many.status_code == 400
    assert (await api.post("/admin/dlq/render/purge", {"taskIds": "x"})).status_code == 400


async def test_a_requeued_task_survives_restart_state(api: Api) -> None:
    """The DLQ counters are stored: a requeue's decrement is what recovery reads back."""
    ids = await _dead_letter(api, 1)
    await api.post("/admin/dlq/render/requeue", {"taskIds": ids})
    shard = api.app.node.shard_for(ids[0])
    recovered = type(shard.engine)(shard.engine.store, shard.engine.config)
    recovered.recover(api.clock.now_ms())
    assert ids[0] in recovered.index.tasks
    assert sum(recovered.index.dlq_counts.values()) == 0
