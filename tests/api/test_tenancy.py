"""Tenant isolation on every HTTP route (spec 03 §4.1 and gap 7, spec 02 gap 2).

Tenant A is `dev` (the dev tokens); tenant B is `globex`, whose producer is an admin and whose
worker has every scope and every command. Whatever B does, A's tasks stay as they were and B
learns nothing of them: other tenants' ids answer 404, exactly like ids that do not exist.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import OTHER_PRODUCER, OTHER_WORKER, PRODUCER, WORKER, Api

FAR_FUTURE = "2100-01-01T00:00:00Z"


async def a_leased_task(api: Api) -> dict[str, Any]:
    created = await api.create(idempotencyKey="k-1")
    claimed = await api.claim()
    assert claimed.status_code == 200 and claimed.json()["id"] == created["id"]
    return dict(claimed.json())


async def test_b_cannot_read_a(api: Api) -> None:
    task = await a_leased_task(api)
    for headers in (OTHER_PRODUCER, OTHER_WORKER):
        read = await api.get(f"/tasks/{task['id']}", headers)
        assert read.status_code == 404 and read.json() == {"error": "not found"}
        result = await api.get(f"/tasks/{task['id']}/result", headers)
        assert result.status_code == 404 and result.json() == {"error": "task not found"}


async def test_b_cannot_claim_a(api: Api) -> None:
    await api.create()
    assert (await api.claim(OTHER_WORKER)).status_code == 204
    assert (await api.claim(OTHER_WORKER, commands=["render"])).status_code == 204
    batch = await api.post("/tasks/claim/batch", {"count": 5}, OTHER_WORKER)
    assert batch.status_code == 204
    assert (await api.claim()).status_code == 200  # still there for A


async def test_b_cannot_act_on_a_leased_task(api: Api) -> None:
    task = await a_leased_task(api)
    task_id = task["id"]
    attempts = [
        ("heartbeat", {"extendSeconds": 60}),
        ("abandon", {}),
        ("nack", {"delaySeconds": 0}),
        ("result", {"status": "COMPLETED", "result": {"stolen": True}}),
    ]
    for action, body in attempts:
        response = await api.post(f"/tasks/{task_id}/{action}", body, OTHER_WORKER)
        assert response.status_code == 404, (action, response.text)
        unknown = "task not found" if action == "result" else "not-found"  # codeQ's texts
        assert response.json()["error"] == unknown, (action, response.text)
    batch = await api.post(
        "/tasks/batch/results",
        {"results": [{"taskId": task_id, "status": "FAILED", "error": "x"}]},
        OTHER_WORKER,
    )
    assert batch.status_code == 200
    assert batch.json() == {"results": [{"taskId": task_id, "error": "task not found"}]}
    after = (await api.get(f"/tasks/{task_id}")).json()
    assert after["status"] == "IN_PROGRESS" and after["leaseUntil"] == task["leaseUntil"]
    assert after.get("attempts") == 1 and "resultKey" not in after


async def test_idempotency_keys_are_per_tenant(api: Api) -> None:
    mine = await api.create(idempotencyKey="k-1")
    response = await api.post(
        "/tasks", {"command": "render", "payload": {}, "idempotencyKey": "k-1"}, OTHER_PRODUCER
    )
    assert response.status_code == 202  # a fresh task of B, not a replay of A's
    theirs = response.json()
    assert theirs["id"] != mine["id"] and theirs["tenantId"] == "globex"


async def test_b_cannot_count_or_list_a(api: Api) -> None:
    await api.create()
    await api.create(command="bill", delaySeconds=60)
    assert (await api.get("/admin/queues", OTHER_PRODUCER)).json() == {}
    stats = await api.get("/admin/queues/render", OTHER_PRODUCER)
    assert stats.json() == {"command": "render", "ready": 0, "delayed": 0, "inProgress": 0, "dlq": 0}
    assert (await api.get("/admin/queues")).json() != {}


async def test_b_cannot_clean_up_a(api: Api) -> None:
    task = await a_leased_task(api)
    done = await api.post(f"/tasks/{task['id']}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    assert done.status_code == 200
    swept = await api.post("/admin/tasks/cleanup", {"before": FAR_FUTURE}, OTHER_PRODUCER)
    assert swept.status_code == 200 and swept.json()["deleted"] == 0
    assert (await api.get(f"/tasks/{task['id']}/result")).status_code == 200
    own = await api.post("/admin/tasks/cleanup", {"before": FAR_FUTURE}, PRODUCER)
    assert own.json()["deleted"] == 1


async def test_b_sees_only_its_own_work(api: Api) -> None:
    """B's own flow works beside A's, and each side claims only its own tasks."""
    a = await api.create()
    response = await api.post("/tasks", {"command": "render", "payload": {}}, OTHER_PRODUCER)
    b = response.json()
    claimed_b = await api.claim(OTHER_WORKER)
    assert claimed_b.json()["id"] == b["id"]
    claimed_a = await api.claim()
    assert claimed_a.json()["id"] == a["id"]


async def test_worker_instances_own_their_leases(api: Api) -> None:
    """Ownership is (tenant, subject, instance): `X-Worker-Id` names an instance of the subject."""
    created = await api.create()
    a = {**WORKER, "X-Worker-Id": "a"}
    claimed = await api.claim(a)
    assert claimed.json()["workerId"] == "dev-worker/a"
    b = {**WORKER, "X-Worker-Id": "b"}
    for headers in (b, WORKER):  # another instance, and the bare subject, are not the owner
        stolen = await api.post(f"/tasks/{created['id']}/heartbeat", {}, headers)
        assert stolen.status_code == 403 and stolen.json()["error"] == "not-owner"
    assert (await api.post(f"/tasks/{created['id']}/heartbeat", {}, a)).status_code == 200
    same = {**WORKER, "X-Worker-Id": "dev-worker/a"}  # the returned id is accepted as it is
    assert (await api.post(f"/tasks/{created['id']}/abandon", {}, same)).status_code == 200
    too_long = await api.claim({**WORKER, "X-Worker-Id": "x" * 129})
    assert too_long.status_code == 400 and too_long.json()["field"] == "workerId"


async def test_b_cannot_see_or_touch_a_dead_letters(api: Api) -> None:
    dead = (await api.create(command="d", maxAttempts=1))["id"]
    await api.claim(commands=["d"])
    assert (await api.post(f"/tasks/{dead}/nack", {}, WORKER)).json()["status"] == "dlq"
    page = await api.get("/admin/dlq/d", OTHER_PRODUCER)
    assert page.status_code == 200 and page.json()["tasks"] == []
    for action in ("requeue", "purge"):
        for body in ({"taskIds": [dead]}, {"all": True}):
            response = await api.post(f"/admin/dlq/d/{action}", body, OTHER_PRODUCER)
            assert response.status_code == 200 and response.json()[f"{action}d"] == 0, (action, body)
    mine = (await api.get("/admin/dlq/d")).json()["tasks"]
    assert [t["id"] for t in mine] == [dead]
