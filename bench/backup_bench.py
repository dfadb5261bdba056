#!/usr/bin/env python3
"""Online backup and restore: how long `codeq backup` and `codeq restore` take for N tasks.

Spawns `codeq serve --dev` on a free port (fsync off for a fast fill), creates `--tasks`
pending tasks through `/tasks/batch`, then times, each through the real CLI: `codeq backup`
(while the server is idle, and again while a writer keeps creating), `codeq restore`, and a
server started on the restored directory until `/readyz` answers.

  .venv/bin/python bench/backup_bench.py [--tasks 200000] [--shards 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.server import ServerProcess  # noqa: E402 — the repo root must be importable first

CODEQ = str(Path(sys.executable).parent / "codeq")
HEADERS = {"Authorization": "Bearer dev-producer"}


async def fill(url: str, tasks: int, concurrency: int = 8) -> None:
    batches = asyncio.Queue[int]()
    for start in range(0, tasks, 100):
        batches.put_nowait(min(100, tasks - start))

    async def worker(client: httpx.AsyncClient) -> None:
        while not batches.empty():
            size = batches.get_nowait()
            body = {"tasks": [{"command": "bench", "payload": {"n": i}} for i in range(size)]}
            (await client.post("/v1/codeq/tasks/batch", json=body)).raise_for_status()

    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def timed_cli(*args: str, url: str = "") -> float:
    env = {**os.environ, "CODEQ_PRODUCER_TOKEN": "dev-producer", "CODEQ_BASE_URL": url}
    started = time.perf_counter()
    done = subprocess.run([CODEQ, *args], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"codeq {' '.join(args)} failed: {done.stderr}")
    return time.perf_counter() - started


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def writer(url: str, stop: threading.Event, counter: list[int]) -> None:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
        while not stop.is_set():
            client.post("/v1/codeq/tasks", json={"command": "bench", "payload": {}}).raise_for_status()
            counter[0] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="codeq-backup-bench-"))
    shard_args = ["--shards", str(args.shards), "--no-fsync"]
    server = ServerProcess(work / "data", args=shard_args)
    restored = ServerProcess(work / "restored", args=["--shards", str(args.shards)])
    try:
        server.start()
        started = time.perf_counter()
        asyncio.run(fill(server.url, args.tasks))
        fill_s = time.perf_counter() - started
        idle_s = timed_cli("backup", str(work / "idle"), url=server.url)
        stop, counter = threading.Event(), [0]
        thread = threading.Thread(target=writer, args=(server.url, stop, counter), daemon=True)
        thread.start()
        time.sleep(1.0)  # let the writer reach its pace before the timed backup
        before = counter[0]
        loaded_s = timed_cli("backup", str(work / "loaded"), url=server.url)
        during = counter[0] - before
        stop.set()
        thread.join(30)
        server.terminate()
        restore_s = timed_cli("restore", str(work / "loaded"), "--data", str(work / "restored"))
        started = time.perf_counter()
        restored.start()
        ready_s = time.perf_counter() - started
        print(f"| tasks / shards | {args.tasks:,} / {args.shards} |")
        print(f"| fill through /tasks/batch (fsync off) | {fill_s:.2f} s |")
        print(f"| backup size | {size_of(work / 'idle') / 1e6:.1f} MB |")
        print(f"| `codeq backup`, idle server (CLI wall time) | {idle_s:.2f} s |")
        meanwhile = f"{during} creates acknowledged meanwhile"
        print(f"| `codeq backup` while a writer creates | {loaded_s:.2f} s ({meanwhile}) |")
        print(f"| `codeq restore` (copy + open check) | {restore_s:.2f} s |")
        print(f"| `codeq serve` on the restored data → /readyz | {ready_s:.2f} s |")
    finally:
        server.stop()
        restored.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
