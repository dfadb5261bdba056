"""CPU per create → claim → result cycle through the ASGI app, in process (memory store).

Compares two versions of the request path under the same interpreter and packages:
`PYTHONPATH=<other>/src python bench/observability_cycle.py other` against
`python bench/observability_cycle.py this`, alternated; best of 7 rounds of 3,000 cycles.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from codeq.app import App
from codeq.config import load_settings

Headers = list[tuple[bytes, bytes]]
PRODUCER: Headers = [(b"authorization", b"Bearer dev-producer"), (b"content-type", b"application/json")]
WORKER: Headers = [(b"authorization", b"Bearer dev-worker"), (b"content-type", b"application/json")]
CREATE = json.dumps({"command": "render", "payload": {"n": 1}}).encode()
RESULT = json.dumps({"status": "COMPLETED", "result": {"ok": 1}}).encode()


async def call(asgi: Any, method: str, path: str, body: bytes, headers: Headers) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b""}
    await asgi(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def cycle(asgi: Any) -> None:
    await call(asgi, "POST", "/v1/codeq/tasks", CREATE, PRODUCER)
    _, claimed = await call(asgi, "POST", "/v1/codeq/tasks/claim", b"{}", WORKER)
    task_id = json.loads(claimed)["id"]
    status, _ = await call(asgi, "POST", f"/v1/codeq/tasks/{task_id}/result", RESULT, WORKER)
    assert status == 200, status


async def main(label: str, cycles: int = 3000, rounds: int = 7) -> None:
    app = App(load_settings(environ={}, overrides={"provider": "memory", "dev": True}))
    await app.start()
    for _ in range(2000):  # warm-up
        await cycle(app.asgi)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(cycles):
            await cycle(app.asgi)
        best = min(best, (time.process_time() - started) / cycles * 1e6)
    await app.stop()
    print(f"{label}: best CPU per cycle {best:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "this"))
