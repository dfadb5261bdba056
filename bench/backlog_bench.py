#!/usr/bin/env python3
"""A queue bigger than memory (issue 18 item 4): a backlog of N pending 1 KB tasks on one node.

1. create: spawns `codeq serve --dev` (fsync on) with a data directory of its own and creates
   `--tasks` tasks through the gRPC producer stream (`AsyncProducer.create_many`, chunks of
   100, `--producers` in parallel), random priorities 0–9, random (incompressible) payloads
   of `--payload-bytes`. Reports creates/s, RSS and the store's size.
2. restart: SIGTERM, then the same command again, timed until `/readyz` answers 200; the
   server's RSS then, per pending task.
3. drain: one client claims with `POST /tasks/claim/batch` (count `--claim`) in a loop and
   checks the order as it goes — priority never rises, and within a priority `createdAt` never
   goes back — while a second one completes every claimed task with
   `POST /tasks/batch/results`. Reports claims/s, order violations, RSS while draining.
   `--drain-seconds` bounds the drain; `--attach PORT:PID` only drains a running server.

The data directory is deleted at the end (also on SIGTERM).

  .venv/bin/python bench/backlog_bench.py [--tasks 5000000] [--payload-bytes 1024]
      [--producers 8] [--claim 1000] [--tmp-dir /tmp] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_bench import spawn_server, wait_ready
from restart_bench import disk_bytes, vm_kb

HOST = "127.0.0.1"
COMMAND = "backlog"
PRODUCER = {"Authorization": "Bearer dev-producer", "Content-Type": "application/json"}
WORKER = {"Authorization": "Bearer dev-worker", "Content-Type": "application/json"}


def log(message: str) -> None:
    print(f"backlog_bench: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    return round((vm_kb("VmRSS", pid) or 0) / 1024, 1)


async def create(urls: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    from codeq.client import AsyncProducer

    size = args.payload_bytes
    pool = [base64.b64encode(os.urandom(size))[:size].decode() for _ in range(4096)]
    rng = random.Random(18)
    made = 0
    started = time.perf_counter()

    async def produce(producer: AsyncProducer) -> None:
        nonlocal made
        while made < args.tasks:
            count = min(100, args.tasks - made)
            made += count
            specs = [
                {"command": COMMAND, "payload": {"p": rng.choice(pool)}, "priority": rng.randrange(10)}
                for _ in range(count)
            ]
            await producer.create_many(specs)
            if made % 250_000 < count:
                log(f"created {made:,}")

    async with AsyncProducer(urls["producer"], "dev-producer", http_url=urls["http"]) as producer:
        await asyncio.gather(*(produce(producer) for _ in range(args.producers)))
    elapsed = time.perf_counter() - started
    return {"create_s": round(elapsed, 1), "creates_per_s": round(args.tasks / elapsed)}


Headers = dict[str, str]


class Drain:
    """Claims in one thread (checking the order), completes in another."""

    def __init__(self, port: int, claim: int, seconds: float = 0.0) -> None:
        self.port = port
        self.claim = claim
        self.stop_at = time.monotonic() + seconds if seconds > 0 else float("inf")
        self.done: queue.Queue[list[str] | None] = queue.Queue(maxsize=8)
        self.claimed = 0
        self.completed = 0
        self.violations = 0
        self.priorities = [0] * 10
        self._last: tuple[int, float] | None = None

    def _post(self, conn: http.client.HTTPConnection, path: str, body: object, headers: Headers) -> Any:
        conn.request("POST", path, json.dumps(body), headers)
        response = conn.getresponse()
        raw = response.read()
        if response.status == 204:
            return None
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {raw[:300]!r}")
        return json.loads(raw)

    def claim_all(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        body = {"count": self.claim, "commands": [COMMAND], "leaseSeconds": 3600}
        try:
            while time.monotonic() < self.stop_at and (
                page := self._post(conn, "/v1/codeq/tasks/claim/batch", body, WORKER)
            ):
                tasks = page["tasks"]
                for task in tasks:
                    self._check(task)
                self.claimed += len(tasks)
                self.done.put([task["id"] for task in tasks])
        finally:
            self.done.put(None)
            conn.close()

    def _check(self, task: dict[str, Any]) -> None:
        # `createdAt` drops trailing zeros of its milliseconds: compare instants, not text.
        rank = (-int(task.get("priority", 0)), datetime.fromisoformat(task["createdAt"]).timestamp())
        if self._last is not None and rank < self._last:
            self.violations += 1
        self._last = rank
        self.priorities[-rank[0]] += 1

    def complete_all(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        try:
            while (ids := self.done.get()) is not None:
                for first in range(0, len(ids), 1000):
                    chunk = ids[first : first + 1000]
                    results = [{"taskId": i, "status": "COMPLETED", "result": {"ok": True}} for i in chunk]
                    self._post(conn, "/v1/codeq/tasks/batch/results", {"results": results}, WORKER)
                    self.completed += len(chunk)
        finally:
            conn.close()


def drain(port: int, pid: int, claim: int, seconds: float = 0.0) -> dict[str, Any]:
    d = Drain(port, claim, seconds)
    threads = [threading.Thread(target=d.claim_all), threading.Thread(target=d.complete_all)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    peak, samples = 0.0, []
    while any(thread.is_alive() for thread in threads):
        time.sleep(5)
        rss = rss_mb(pid)
        peak = max(peak, rss)
        samples.append((round(time.perf_counter() - started), rss, d.claimed))
        if len(samples) % 24 == 0:
            log(f"drained {d.claimed:,} (RSS {rss} MB)")
    elapsed = time.perf_counter() - started
    return {
        "drain_s": round(elapsed, 1),
        "claims_per_s": round(d.claimed / elapsed),
        "claimed": d.claimed,
        "completed": d.completed,
        "order_violations": d.violations,
        "by_priority": d.priorities,
        "drain_peak_rss_mb": peak,
        "drain_rss_samples": samples[:: max(len(samples) // 20, 1)],
    }


def stop(proc: subprocess.Popen[bytes]) -> float:
    started = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return round(time.perf_counter() - started, 1)


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    data, report = tmp / "data", {"tasks": args.tasks, "payload_bytes": args.payload_bytes}
    os.environ.update(LIMITS_MAX_CLAIM_BATCH=str(args.claim), LIMITS_MAX_BATCH_SIZE="1000")
    proc, urls = spawn_server(data, tmp / "server-1.log", [])
    try:
        await wait_ready(urls["http"], proc)
        log(f"creating {args.tasks:,} tasks ...")
        report.update(await create(urls, args))
        report["rss_after_create_mb"] = rss_mb(proc.pid)
    finally:
        report["stop_s"] = stop(proc)
    report["disk_mb"] = round(disk_bytes(data) / 2**20)
    log("restarting ...")
    proc, urls = spawn_server(data, tmp / "server-2.log", [])
    try:
        report["restart_ready_s"] = round(await wait_ready(urls["http"], proc, timeout=900), 2)
        rss = rss_mb(proc.pid)
        report["rss_after_restart_mb"] = rss
        report["rss_bytes_per_task"] = round(rss * 2**20 / args.tasks)
        log(f"ready in {report['restart_ready_s']} s, RSS {rss} MB; draining ...")
        port = int(urls["http"].rsplit(":", 1)[1])
        report.update(drain(port, proc.pid, args.claim, args.drain_seconds))
    finally:
        stop(proc)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5_000_000, help="pending tasks to create")
    parser.add_argument("--payload-bytes", type=int, default=1024, help="payload size")
    parser.add_argument("--producers", type=int, default=8, help="parallel create_many callers")
    parser.add_argument("--claim", type=int, default=1000, help="tasks per claim while draining")
    parser.add_argument("--tmp-dir", default="/tmp", help="where the data directory goes")
    parser.add_argument("--drain-seconds", type=float, default=0.0, help="stop draining after this (0: all)")
    parser.add_argument("--attach", default="", help="PORT:PID of a running server: only drain it")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.attach:  # resume a drain (a second drainer sees a subsequence of the one order)
        port, pid = (int(part) for part in args.attach.split(":"))
        print(json.dumps(drain(port, pid, args.claim, args.drain_seconds)))
        return 0
    signal.signal(signal.SIGTERM, _raise_exit)  # so that the data directory is removed
    tmp = Path(tempfile.mkdtemp(prefix="codeq-backlog-bench-", dir=args.tmp_dir))
    try:
        report = asyncio.run(measure(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
