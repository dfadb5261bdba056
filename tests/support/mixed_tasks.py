"""A node's tasks in every state, made and read back over HTTP: what a move between deployment
modes (backup → cluster init, reshard) must carry over whole."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}
PREFIX = "/v1/codeq"


@dataclass
class Mixed:
    """What was made: task id -> the status it must keep, and the ids by role."""

    statuses: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> task id
    pending: dict[str, list[str]] = field(default_factory=dict)  # command -> ids waiting
    completed: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    claimed: str = ""
    lease_token: int = 0


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}{PREFIX}", timeout=10)


def post(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """POST as the SDK does: follow a follower's 307 to the leader with the same token (httpx
    drops the Authorization header on a redirect to another origin), and ask again while a
    Raft shard elects a leader (a loaded machine may start an election): that 503 is given
    before anything is proposed."""
    deadline = time.monotonic() + 30
    while True:
        reply = _following_leader(http, path, body, headers)
        if reply.status_code != 503 or "no leader" not in reply.text or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)  # polling for an election to end, as the SDK's retry does


def _following_leader(
    http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    reply = http.post(path, json=body, headers=headers)
    for _ in range(3):
        if reply.status_code != 307:
            break
        reply = http.post(reply.headers["location"], json=body, headers=headers)
    return reply


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.url}: {reply.status_code} {reply.text}"
    return reply.json() if reply.content else None


def create(http: httpx.Client, command: str, **fields: Any) -> str:
    body = {"command": command, "payload": {"n": len(command)}, **fields}
    task_id: str = ok(post(http, "/tasks", body, PRODUCER), 202)["id"]
    return task_id


def claim(http: httpx.Client, command: str) -> dict[str, Any] | None:
    reply = post(http, "/tasks/claim", {"commands": [command], "leaseSeconds": 600}, WORKER)
    if reply.status_code == 204:
        return None
    claimed: dict[str, Any] = ok(reply)
    return claimed


def make(url: str, keyed: int = 12) -> Mixed:
    """Pending tasks with idempotency keys (`render`) and without (`report`), delayed ones
    (`later`), two completed with results, one dead-lettered and one held under a lease."""
    mixed = Mixed()
    with client(url) as http:
        for n in range(keyed):
            mixed.keys[f"order-{n}"] = create(http, "render", idempotencyKey=f"order-{n}")
        mixed.pending["render"] = list(mixed.keys.values())
        mixed.pending["report"] = [create(http, "report") for _ in range(5)]
        for task_id in [create(http, "later", delaySeconds=3600) for _ in range(3)]:
            mixed.statuses[task_id] = "PENDING"
        for n in range(2):
            create(http, "work", maxAttempts=1)
            task = claim(http, "work")
            assert task is not None
            done = {"status": "COMPLETED", "result": {"n": n}}
            ok(post(http, f"/tasks/{task['id']}/result", done, WORKER))
            mixed.completed.append(task["id"])
        create(http, "doomed", maxAttempts=1)
        task = claim(http, "doomed")
        assert task is not None
        assert ok(post(http, f"/tasks/{task['id']}/nack", {"reason": "broken"}, WORKER))["status"] == "dlq"
        mixed.dead.append(task["id"])
        create(http, "held")
        task = claim(http, "held")
        assert task is not None
        mixed.claimed, mixed.lease_token = task["id"], task["leaseToken"]
    for ids in mixed.pending.values():
        mixed.statuses.update(dict.fromkeys(ids, "PENDING"))
    mixed.statuses.update(dict.fromkeys(mixed.completed, "COMPLETED"))
    mixed.statuses[mixed.claimed] = "IN_PROGRESS"
    return mixed


def statuses(url: str, task_ids: list[str]) -> dict[str, str]:
    """The status of each task the node answers for (a missing task is left out)."""
    found = {}
    with client(url) as http:
        for task_id in task_ids:
            reply = http.get(f"/tasks/{task_id}", headers=PRODUCER)
            if reply.status_code == 200:
                found[task_id] = reply.json()["status"]
    return found


def check_carried_over(url: str, mixed: Mixed, *, batch: bool = True) -> None:
    """Every task in its state, the results, the DLQ, and the idempotency keys still answering
    with their tasks, one by one and (`batch`, on a node leading every shard) in one batch."""
    assert statuses(url, list(mixed.statuses)) == mixed.statuses
    dead = statuses(url, mixed.dead)
    assert set(dead) == set(mixed.dead), "a dead-lettered task is missing"
    with client(url) as http:
        for n, task_id in enumerate(mixed.completed):
            result = ok(http.get(f"/tasks/{task_id}/result", headers=PRODUCER))["result"]
            assert result["status"] == "COMPLETED" and result["result"] == {"n": n}
        page = ok(http.get("/admin/dlq/doomed", headers=PRODUCER))
        assert [task["id"] for task in page["tasks"]] == mixed.dead
        bodies = [{"command": "render", "payload": {"n": 6}, "idempotencyKey": key} for key in mixed.keys]
        for body, task_id in zip(bodies, mixed.keys.values(), strict=True):
            again = post(http, "/tasks", body, PRODUCER)
            assert again.status_code in (200, 202) and again.json()["id"] == task_id, (body, again.text)
        if batch:
            items = ok(post(http, "/tasks/batch", {"tasks": bodies}, PRODUCER))["results"]
            assert [item["task"]["id"] for item in items] == list(mixed.keys.values())


def check_lease_fenced(url: str, mixed: Mixed) -> None:
    """The claimed task's lease holds: its token extends it, an older one is refused."""
    with client(url) as http:
        stale = {"leaseToken": mixed.lease_token + 1}
        refused = post(http, f"/tasks/{mixed.claimed}/heartbeat", stale, WORKER)
        assert refused.status_code == 409, refused.text
        current = {"leaseToken": mixed.lease_token, "extendSeconds": 60}
        ok(post(http, f"/tasks/{mixed.claimed}/heartbeat", current, WORKER))


def claim_all(url: str, command: str) -> set[str]:
    """Claim every ready task of `command`; marks them IN_PROGRESS in no record."""
    claimed: set[str] = set()
    with client(url) as http:
        while (task := claim(http, command)) is not None:
            claimed.add(task["id"])
    return claimed


def take_pending(url: str, mixed: Mixed, command: str) -> None:
    """Claim the pending tasks of `command`: exactly those, and nothing delayed."""
    assert claim_all(url, command) == set(mixed.pending[command])
    assert claim_all(url, "later") == set()
    mixed.statuses.update(dict.fromkeys(mixed.pending.pop(command), "IN_PROGRESS"))
