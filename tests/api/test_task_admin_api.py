"""Issue 14 over HTTP: list a command's tasks by state, cancel a task, the tenant's overview."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, WORKER, Api

LIST = "/admin/queues/{}/tasks"


async def _page(api: Api, command: str, **params: Any) -> dict[str, Any]:
    response = await api.get(LIST.format(command), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _all_pages(api: Api, command: str, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        body = await _page(api, command, cursor=cursor, **params)
        ids += [task["id"] for task in body["tasks"]]
        cursor = body.get("nextCursor", "")
        if not cursor:
            return ids


async def _claim(api: Api, command: str) -> str:
    response = await api.claim(commands=[command])
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


async def test_ready_tasks_page_newest_and_oldest_first_with_a_cursor(api: Api) -> None:
    created = []
    for _ in range(7):
        created.append((await api.create(command="render"))["id"])
        api.clock.advance(1)
    first = await _page(api, "render", state="ready", limit="3")
    assert [t["id"] for t in first["tasks"]] == created[::-1][:3]
    assert first["tasks"][0]["status"] == "PENDING"
    assert await _all_pages(api, "Render", state="ready", limit="3") == created[::-1]
    assert await _all_pages(api, "render", state="ready", order="oldest", limit="2") == created
    last = await _page(api, "render", state="ready", limit="7")
    assert "nextCursor" not in last or last["nextCursor"] == ""


async def test_each_state_lists_its_own_tasks(api: Api) -> None:
    ready = (await api.create(command="s"))["id"]
    delayed = (await api.create(command="s", delaySeconds=600))["id"]
    done, failed, dead, leased = [(await api.create(command="s", maxAttempts=1))["id"] for _ in range(4)]
    by_claim = {}
    for _ in range(5):
        by_claim[await _claim(api, "s")] = True
    assert set(by_claim) == {ready, done, failed, dead, leased}
    await api.post(f"/tasks/{done}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    await api.post(f"/tasks/{failed}/result", {"status": "FAILED", "error": "boom"}, WORKER)
    await api.post(f"/tasks/{dead}/nack", {}, WORKER)
    await api.post(f"/tasks/{ready}/abandon", None, WORKER)
    cancelled = (await api.create(command="s"))["id"]
    assert (await api.post(f"/tasks/{cancelled}/cancel")).status_code == 200
    expected = {
        "ready": [ready],
        "delayed": [delayed],
        "in_progress": [leased],
        "completed": [done],
        "failed": [failed],
        "dead_lettered": [dead],
        "cancelled": [cancelled],
    }
    for state, ids in expected.items():
        assert await _all_pages(api, "s", state=state) == ids, state


async def test_finished_pages_follow_finish_time(api: Api) -> None:
    ids = [(await api.create(command="f"))["id"] for _ in range(5)]
    finished = []
    for _ in ids:
        task_id = await _claim(api, "f")
        await api.post(f"/tasks/{task_id}/result", {"status": "COMPLETED", "result": {}}, WORKER)
        finished.append(task_id)
        api.clock.advance(2)
    assert await _all_pages(api, "f", state="completed", limit="2") == finished[::-1]
    assert await _all_pages(api, "f", state="completed", order="oldest", limit="2") == finished


async def test_bad_queries_are_400s_naming_the_field_and_admins_only(api: Api) -> None:
    for params, field in (
        ({"state": "running"}, "state"),
        ({"state": "ready", "order": "sideways"}, "order"),
        ({"state": "ready", "limit": "501"}, "limit"),
        ({"state": "ready", "cursor": "garbage"}, "cursor"),
    ):
        response = await api.get(LIST.format("x"), params=params)
        assert response.status_code == 400, params
        assert response.json()["field"] == field
    assert (await api.get(LIST.format("x"), PLAIN_PRODUCER, params={"state": "ready"})).status_code == 403
    assert (await api.get("/admin/overview", PLAIN_PRODUCER)).status_code == 403
    task_id = (await api.create())["id"]
    assert (await api.post(f"/tasks/{task_id}/cancel", None, PLAIN_PRODUCER)).status_code == 403


async def test_tenants_do_not_see_each_others_tasks(api: Api) -> None:
    task_id = (await api.create(command="t"))["id"]
    other = await api.get(LIST.format("t"), OTHER_PRODUCER, params={"state": "ready"})
    assert other.json()["tasks"] == []
    assert (await api.post(f"/tasks/{task_id}/cancel", None, OTHER_PRODUCER)).status_code == 404
    assert (await api.post("/tasks/no-such-task/cancel")).status_code == 404
    assert (await api.get("/admin/overview", OTHER_PRODUCER)).json() == {"queues": []}


async def test_cancelling_a_pending_task_finishes_it_at_once(api: Api) -> None:
    task_id = (await api.create(command="c", delaySeconds=30))["id"]
    response = await api.post(f"/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert (await api.post(f"/tasks/{task_id}/cancel")).json()["status"] == "CANCELLED"  # idempotent
    result = (await api.get(f"/tasks/{task_id}/result")).json()["result"]
    assert result["status"] == "CANCELLED" and result["error"] == "cancelled"
    api.clock.advance(60)
    assert (await api.claim(commands=["c"])).status_code == 204


async def test_a_leased_task_is_cancelled_at_its_workers_next_heartbeat(api: Api) -> None:
    task_id = (await api.create(command="c"))["id"]
    await _claim(api, "c")
    marked = await api.post(f"/tasks/{task_id}/cancel")
    assert marked.status_code == 200
    assert marked.json()["status"] == "IN_PROGRESS" and marked.json()["cancelRequested"] is True
    assert (await api.get(f"/tasks/{task_id}")).json()["cancelRequested"] is True
    again = await api.post(f"/tasks/{task_id}/cancel")
    assert again.status_code == 200 and again.json()["cancelRequested"] is True
    beat = await api.post(f"/tasks/{task_id}/heartbeat", {}, WORKER)
    assert beat.status_code == 409 and beat.json() == {"error": "task cancelled"}
    assert (await api.get(f"/tasks/{task_id}")).json()["status"] == "CANCELLED"
    late = await api.post(f"/tasks/{task_id}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    assert late.status_code == 409


async def test_a_result_or_nack_after_a_cancel_is_answered_task_cancelled(api: Api) -> None:
    first = (await api.create(command="c"))["id"]
    second = (await api.create(command="c"))["id"]
    third = (await api.create(command="c"))["id"]
    for _ in range(3):
        await _claim(api, "c")
    for task_id in (first, second, third):
        await api.post(f"/tasks/{task_id}/cancel")
    result = await api.post(f"/tasks/{first}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    assert result.status_code == 409 and result.json() == {"error": "task cancelled"}
    nack = await api.post(f"/tasks/{second}/nack", {}, WORKER)
    assert nack.status_code == 409 and nack.json() == {"error": "task cancelled"}
    batch = await api.post(
        "/tasks/batch/results", {"results": [{"taskId": third, "status": "COMPLETED", "result": {}}]}, WORKER
    )
    assert batch.status_code == 200
    assert batch.json()["results"][0]["error"] == "task cancelled"
    for task_id in (first, second, third):
        assert (await api.get(f"/tasks/{task_id}")).json()["status"] == "CANCELLED"
    api.clock.advance(3600)
    assert (await api.claim(commands=["c"])).status_code == 204


async def test_cancelling_a_finished_task_is_409(api: Api) -> None:
    task_id = (await api.create(command="c"))["id"]
    await _claim(api, "c")
    await api.post(f"/tasks/{task_id}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    response = await api.post(f"/tasks/{task_id}/cancel")
    assert response.status_code == 409 and response.json() == {"error": "task already finished"}
    assert (await api.get(f"/tasks/{task_id}")).json()["status"] == "COMPLETED"


async def test_overview_counts_per_command_from_counters(api: Api) -> None:
    for command in ("render", "mail", "render"):
        await api.create(command=command)
    await api.create(command="mail", delaySeconds=60)
    await api.create(command="dead", maxAttempts=1)
    dead = await _claim(api, "dead")
    await api.post(f"/tasks/{dead}/nack", {}, WORKER)
    task_id = await _claim(api, "render")
    await api.post(f"/tasks/{task_id}/result", {"status": "COMPLETED", "result": {}}, WORKER)
    await _claim(api, "render")
    api.clock.advance(120)  # out of the last minute, still in the last hour
    mail = await _claim(api, "mail")
    await api.post(f"/tasks/{mail}/result", {"status": "FAILED", "error": "x"}, WORKER)
    body = (await api.get("/admin/overview")).json()
    rows = {row["command"]: row for row in body["queues"]}
    assert [row["command"] for row in body["queues"]] == ["dead", "mail", "render"]
    assert rows["render"] == {
        "command": "render",
        "ready": 0,
        "delayed": 0,
        "inProgress": 1,
        "deadLettered": 0,
        "completed1m": 0,
        "failed1m": 0,
        "completed1h": 1,
        "failed1h": 0,
    }
    # The other mail task is due; on another shard it is promoted only by that shard's next tick.
    assert (
        rows["mail"]["ready"] + rows["mail"]["delayed"] == 1
        and rows["mail"]["failed1m"] == 1
        and rows["mail"]["failed1h"] == 1
    )
    assert rows["dead"]["deadLettered"] == 1 and rows["dead"]["failed1h"] == 1
    api.clock.advance(3700)
    later = {row["command"]: row for row in (await api.get("/admin/overview")).json()["queues"]}
    assert later["render"]["completed1h"] == 0 and later["mail"]["failed1h"] == 0
