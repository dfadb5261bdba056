#!/usr/bin/env python3
"""Result callbacks: how fast the outbox drains into a local receiver, and what a webhook
costs the create → claim → complete path.

Spawns `codeq serve --dev` (fsync on, callbacks to 127.0.0.1 allowed) and a threaded local
HTTP receiver answering 200, creates `--tasks` tasks (with or without a webhook) through
`/tasks/batch`, claims and completes them through the batch routes, and reports the
create-to-complete time and, with webhooks, the time until the receiver had every callback.

  .venv/bin/python bench/callback_bench.py [--tasks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.receiver import Receiver  # noqa: E402 — the repo root must be importable first
from tests.support.server import ServerProcess  # noqa: E402

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}


async def cycle(url: str, tasks: int, webhook: str | None, command: str) -> None:
    async with httpx.AsyncClient(base_url=url + "/v1/codeq", timeout=60) as client:
        for start in range(0, tasks, 100):
            item = {"command": command, "payload": {}, **({"webhook": webhook} if webhook else {})}
            body = {"tasks": [item] * min(100, tasks - start)}
            (await client.post("/tasks/batch", json=body, headers=PRODUCER)).raise_for_status()
        done = 0
        while done < tasks:
            claim = {"commands": [command], "count": 10, "leaseSeconds": 300}
            reply = await client.post("/tasks/claim/batch", json=claim, headers=WORKER)
            reply.raise_for_status()
            claimed = reply.json()["tasks"] if reply.status_code == 200 else []
            results = [{"taskId": t["id"], "status": "COMPLETED", "result": {"ok": True}} for t in claimed]
            if results:
                answer = await client.post("/tasks/batch/results", json={"results": results}, headers=WORKER)
                answer.raise_for_status()
            done += len(claimed)


def serve_receiver(port: Any, count: Any, stop: Any) -> None:
    """The receiver in its own process, so it does not share a GIL with the load."""
    with Receiver() as receiver:
        port.value = int(receiver.url.rsplit(":", 1)[1])
        while not stop.wait(0.05):
            count.value = len(receiver.received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="codeq-callback-bench-"))
    server = ServerProcess(
        work / "data", env={"WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "WEBHOOK_HMAC_SECRET": "x"}
    )
    try:
        server.start()
        port, count, stop = (
            multiprocessing.Value("i", 0),
            multiprocessing.Value("i", 0),
            multiprocessing.Event(),
        )
        receiver = multiprocessing.Process(target=serve_receiver, args=(port, count, stop), daemon=True)
        receiver.start()
        while not port.value:
            time.sleep(0.01)
        started = time.perf_counter()
        asyncio.run(cycle(server.url, args.tasks, None, "plain"))
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        asyncio.run(cycle(server.url, args.tasks, f"http://127.0.0.1:{port.value}/hook", "hooked"))
        hooked_s = time.perf_counter() - started
        while count.value < args.tasks:
            time.sleep(0.01)  # polling the receiver process's counter
        delivered_s = time.perf_counter() - started
        stop.set()
        receiver.join(10)
        print(f"| tasks | {args.tasks:,} |")
        plain_rate = f"{args.tasks / plain_s:,.0f} tasks/s"
        print(f"| create + claim + complete, no webhook | {plain_s:.2f} s ({plain_rate}) |")
        print(f"| the same with a webhook | {hooked_s:.2f} s ({args.tasks / hooked_s:,.0f} tasks/s) |")
        rate = args.tasks / delivered_s
        print(
            f"| ... until the receiver had every callback | {delivered_s:.2f} s ({rate:,.0f} callbacks/s) |"
        )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
