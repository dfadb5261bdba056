"""Fenced leases over HTTP: a holder whose lease ran out and was claimed again is told so."""

from __future__ import annotations

from typing import Any

from codeq.service.maintenance import Maintenance
from tests.api.conftest import WORKER, Api

LEASE_SECONDS = 10
BACKOFF_SECONDS = 5  # the fixed backoff of the test settings


def _as(worker_id: str) -> dict[str, str]:
    return {**WORKER, "X-Worker-Id": worker_id}


async def _expire_and_requeue(api: Api) -> None:
    """Let the lease run out, let the reaper requeue the task, then wait out its backoff."""
    api.clock.advance(LEASE_SECONDS + 1)
    await Maintenance(api.app.node, api.clock).tick()
    api.clock.advance(BACKOFF_SECONDS + 1)


async def _claim(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    response = await api.claim(headers, leaseSeconds=LEASE_SECONDS)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def test_a_late_result_with_a_stale_lease_token_is_refused_and_the_new_holders_accepted(
    api: Api,
) -> None:
    # Two processes on one token and one worker id: only the lease token tells them apart.
    task_id = (await api.create())["id"]
    first = await _claim(api, _as("pod"))
    await _expire_and_requeue(api)
    second = await _claim(api, _as("pod"))
    assert second["id"] == task_id and first["leaseToken"] != second["leaseToken"]

    path = f"/tasks/{task_id}/result"
    late = await api.post(
        path,
        {"status": "COMPLETED", "result": {"by": "first"}, "leaseToken": first["leaseToken"]},
        _as("pod"),
    )
    assert (late.status_code, late.json()) == (409, {"error": "not-owner"})
    fresh = {"status": "COMPLETED", "result": {"by": "second"}, "leaseToken": second["leaseToken"]}
    assert (await api.post(path, fresh, _as("pod"))).status_code == 200
    stored = (await api.get(f"{path}")).json()["result"]
    assert stored["result"] == {"by": "second"}


async def test_two_worker_instances_the_late_one_is_refused(api: Api) -> None:
    task_id = (await api.create())["id"]
    first = await _claim(api, _as("a"))
    await _expire_and_requeue(api)
    second = await _claim(api, _as("b"))
    path = f"/tasks/{task_id}/result"
    late = {"status": "COMPLETED", "result": {}, "leaseToken": first["leaseToken"]}
    assert (await api.post(path, late, _as("a"))).status_code == 409
    # Without a token the owner check alone answers, as codeQ does.
    assert (await api.post(path, {"status": "COMPLETED", "result": {}}, _as("a"))).status_code == 403
    ok = {"status": "COMPLETED", "result": {}, "leaseToken": second["leaseToken"]}
    assert (await api.post(path, ok, _as("b"))).status_code == 200


async def test_heartbeat_nack_and_abandon_with_a_stale_token_are_refused(api: Api) -> None:
    task_id = (await api.create())["id"]
    stale = (await _claim(api, WORKER))["leaseToken"]
    await _expire_and_requeue(api)
    current = (await _claim(api, WORKER))["leaseToken"]
    for action, body in (("heartbeat", {}), ("nack", {}), ("abandon", {})):
        response = await api.post(f"/tasks/{task_id}/{action}", {**body, "leaseToken": stale}, WORKER)
        assert (response.status_code, response.json()) == (409, {"error": "not-owner"}), action
    beat = await api.post(f"/tasks/{task_id}/heartbeat", {"leaseToken": current}, WORKER)
    assert beat.status_code == 200
    assert (await api.post(f"/tasks/{task_id}/abandon", {"leaseToken": current}, WORKER)).status_code == 200


async def test_abandon_then_claim_again_fences_the_first_claim(api: Api) -> None:
    # Abandon gives the attempt back: the attempt count repeats, the lease token never does.
    task_id = (await api.create())["id"]
    first = await _claim(api, WORKER)
    assert (
        await api.post(f"/tasks/{task_id}/abandon", {"leaseToken": first["leaseToken"]}, WORKER)
    ).status_code == 200
    second = await _claim(api, WORKER)
    assert first["attempts"] == second["attempts"] and first["leaseToken"] != second["leaseToken"]
    response = await api.post(f"/tasks/{task_id}/nack", {"leaseToken": first["leaseToken"]}, WORKER)
    assert response.status_code == 409


async def test_a_token_for_a_finished_task_is_refused_as_not_owner(api: Api) -> None:
    task_id = (await api.create())["id"]
    token = (await _claim(api, WORKER))["leaseToken"]
    body = {"status": "COMPLETED", "result": {}, "leaseToken": token}
    assert (await api.post(f"/tasks/{task_id}/result", body, WORKER)).status_code == 200
    again = await api.post(f"/tasks/{task_id}/result", body, WORKER)
    assert (again.status_code, again.json()) == (409, {"error": "not-owner"})
    # Not leased any more: the task shows no token.
    assert "leaseToken" not in (await api.get(f"/tasks/{task_id}")).json()


async def test_batch_results_fence_each_item(api: Api) -> None:
    ids = [(await api.create())["id"] for _ in range(2)]
    claimed = (await api.post("/tasks/claim/batch", {"count": 2}, WORKER)).json()["tasks"]
    tokens = {task["id"]: task["leaseToken"] for task in claimed}
    body = {
        "results": [
            {"taskId": ids[0], "status": "COMPLETED", "result": {}, "leaseToken": tokens[ids[0]]},
            {"taskId": ids[1], "status": "COMPLETED", "result": {}, "leaseToken": tokens[ids[1]] + 1},
        ]
    }
    results = (await api.post("/tasks/batch/results", body, WORKER)).json()["results"]
    assert results[0]["result"]["status"] == "COMPLETED"
    assert results[1] == {"taskId": ids[1], "error": "not-owner"}


async def test_abandon_still_tolerates_a_malformed_body(api: Api) -> None:
    task_id = (await api.create())["id"]
    await _claim(api, WORKER)
    response = await api.post(f"/tasks/{task_id}/abandon", None, WORKER, content=b"not json")
    assert response.status_code == 200
