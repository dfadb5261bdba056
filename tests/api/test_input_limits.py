"""Hostile sizes: each limit answers its own clear 4xx naming the field (spec 02 gap 7)."""

from __future__ import annotations

from tests.api.conftest import WORKER, Api


async def test_body_over_the_limit(api: Api) -> None:
    response = await api.post("/tasks", content=b"{" + b" " * (1 << 20) + b"}")
    assert response.status_code == 413 and response.json()["error"] == "request body exceeds 1048576 bytes"


async def test_payload_over_the_limit(api: Api) -> None:
    response = await api.post("/tasks", {"command": "a", "payload": "x" * (512 * 1024)})
    assert response.status_code == 413
    assert response.json() == {"error": "payload exceeds 524288 bytes", "field": "payload"}


async def test_fields_are_named_in_the_json_bodys_terms(api: Api) -> None:
    response = await api.post("/tasks", {"command": "a", "payload": 1, "maxAttempts": 10**6})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid 'maxAttempts' (at most 1000)", "field": "maxAttempts"}
    claim = await api.post("/tasks/claim", {"commands": ["a"], "leaseSeconds": 10**9}, WORKER)
    assert claim.json() == {"error": "invalid 'leaseSeconds' (at most 86400)", "field": "leaseSeconds"}


async def test_command_names(api: Api) -> None:
    for command in ("a" * 129, "", "bad name", "é"):
        response = await api.post("/tasks", {"command": command, "payload": {}})
        assert response.status_code == 400, command
        assert response.json() == {"error": "invalid command", "field": "command"}
    assert (await api.post("/tasks", {"command": "a" * 128, "payload": {}})).status_code == 202
    claim = await api.claim(commands=["a" * 129])  # the dev worker may claim any command ("*")
    assert claim.status_code == 400 and claim.json() == {"error": "invalid command", "field": "command"}


async def test_claim_command_lists(api: Api) -> None:
    response = await api.claim(commands=[f"c{i}" for i in range(101)])
    assert response.status_code == 400
    assert response.json() == {"error": "too many commands (at most 100)", "field": "commands"}
    assert (await api.claim(commands=[f"c{i}" for i in range(100)])).status_code == 204


async def test_idempotency_keys(api: Api) -> None:
    response = await api.post("/tasks", {"command": "a", "payload": {}, "idempotencyKey": "k" * 257})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid 'idempotencyKey' (at most 256 characters)",
        "field": "idempotencyKey",
    }
    ok = await api.post("/tasks", {"command": "a", "payload": {}, "idempotencyKey": "k" * 256})
    assert ok.status_code == 202


async def test_batch_sizes(api: Api) -> None:
    tasks = [{"command": "a", "payload": {}}] * 101
    response = await api.post("/tasks/batch", {"tasks": tasks})
    assert response.status_code == 400 and response.json()["error"] == "batch size exceeds maximum of 100"
    results = [{"taskId": "x", "status": "FAILED", "error": "e"}] * 101
    response = await api.post("/tasks/batch/results", {"results": results}, WORKER)
    assert response.status_code == 400 and response.json()["error"] == "batch size exceeds maximum of 100"
    response = await api.post("/tasks/claim/batch", {"count": 11}, WORKER)
    assert response.status_code == 400
    assert response.json() == {"error": "count exceeds maximum of 10", "field": "count"}
    assert (await api.post("/tasks/batch", {"tasks": []})).status_code == 400
