#!/usr/bin/env python3
"""The server's resident memory under a steady load while finished tasks pile up (issue 18 item 3).

Spawns `codeq serve --dev` on loopback with a data directory of its own (default retention:
24 h, so every finished task stays on disk for the whole run), then runs a paced
create → claim → complete load through the SDK for `--minutes`: `--rate` tasks/s created in
gRPC batches of `--batch`, claimed and completed by an `AsyncWorker` with batch claims. Every
`--sample` seconds it records the server's VmRSS (/proc/<pid>/status), the store's size on
disk and the cycles acknowledged so far, appending each sample to `--out` as a JSON line. At
the end it prints a markdown table (minute → RSS, store size, cycles) and whether RSS after
`--settle` minutes stayed within 10 % of its value at `--settle` minutes.

  .venv/bin/python bench/memory_bench.py [--minutes 30] [--rate 1500] [--payload-bytes 1024]
      [--batch 100] [--sample 5] [--settle 5] [--out memory-curve.jsonl] [--tmp-dir /tmp]

The data directory is deleted at the end (also on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restart_bench import disk_bytes, free_port, vm_kb

HOST = "127.0.0.1"
COMMAND = "bench"


def spawn_server(
    data: Path, log_path: Path, extra: list[str]
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    http, producer, worker = free_port(), free_port(), free_port()
    cmd = [
        sys.executable, "-m", "codeq.cli.main", "serve", "--dev", "--host", HOST, "--port", str(http),
        "--data", str(data), "--producer-stream-addr", f"{HOST}:{producer}",
        "--worker-stream-addr", f"{HOST}:{worker}", *extra,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    urls = {
        "http": f"http://{HOST}:{http}",
        "producer": f"grpc://{HOST}:{producer}",
        "worker": f"grpc://{HOST}:{worker}",
    }
    return proc, urls


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> float:
    from codeq.h1 import H1Error, fetch

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"codeq serve exited with {proc.returncode}")
        with contextlib.suppress(H1Error):
            if fetch(f"{url}/readyz", timeout=1).status == 200:
                return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise RuntimeError("codeq serve not ready in time")


class SteadyLoad:
    """Creates `rate` tasks/s in batches and completes every one it is handed."""

    def __init__(self, urls: dict[str, str], rate: int, batch: int, payload_bytes: int) -> None:
        self.urls = urls
        self.rate = rate
        self.batch = batch
        # Random text, so the store cannot compress it away (a pool: generating costs CPU).
        size = max(payload_bytes - 8, 0)
        self.payloads = [{"p": base64.b64encode(os.urandom(size))[:size].decode()} for _ in range(1024)]
        self.created = 0
        self.completed = 0
        self.errors = 0
        self.stop = asyncio.Event()

    async def produce(self) -> None:
        from codeq.client import AsyncProducer

        async with AsyncProducer(
            self.urls["producer"], "dev-producer", http_url=self.urls["http"]
        ) as producer:
            started = time.perf_counter()
            while not self.stop.is_set():
                due = started + (self.created + self.batch) / self.rate
                await asyncio.sleep(max(due - time.perf_counter(), 0))
                if self.created - self.completed > 20 * self.rate:
                    continue  # the worker fell behind: hold the backlog, not the server's memory
                try:
                    first = self.created % len(self.payloads)
                    chosen = [self.payloads[(first + i) % len(self.payloads)] for i in range(self.batch)]
                    tasks = await producer.create_many([{"command": COMMAND, "payload": p} for p in chosen])
                except Exception:  # counted; the load goes on
                    self.errors += 1
                    await asyncio.sleep(0.5)
                    continue
                self.created += len(tasks)

    async def work(self) -> None:
        from codeq.client import AsyncWorker, Job

        def on_ack(job: Job, outcome: str) -> None:
            if outcome == "completed":
                self.completed += 1
            else:
                self.errors += 1

        async def handle(job: Job) -> dict[str, bool]:
            return {"ok": True}

        worker = AsyncWorker(
            self.urls["worker"], "dev-worker", concurrency=4 * self.batch, batch_size=self.batch,
            lease_seconds=300, on_ack=on_ack, http_url=self.urls["http"],
        )  # fmt: skip
        worker.register(COMMAND, handle)
        running = asyncio.ensure_future(worker.run(handle_signals=False))
        await self.stop.wait()
        worker.stop()
        await asyncio.gather(running, return_exceptions=True)


async def sample_loop(
    args: argparse.Namespace, pid: int, data: Path, load: SteadyLoad
) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    end = started + args.minutes * 60
    with open(args.out, "w") as out:
        while time.perf_counter() < end:
            await asyncio.sleep(args.sample)
            sample = {
                "t_s": round(time.perf_counter() - started, 1),
                "rss_mb": round((vm_kb("VmRSS", pid) or 0) / 1024, 1),
                "disk_mb": round(disk_bytes(data) / 2**20, 1),
                "created": load.created,
                "completed": load.completed,
                "errors": load.errors,
                "load1": os.getloadavg()[0],
            }
            samples.append(sample)
            out.write(json.dumps(sample) + "\n")
            out.flush()
    return samples


async def measure(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    data = tmp / "data"
    proc, urls = spawn_server(data, tmp / "server.log", args.server_arg)
    try:
        await wait_ready(urls["http"], proc)
        load = SteadyLoad(urls, args.rate, args.batch, args.payload_bytes)
        running = [asyncio.ensure_future(load.produce()), asyncio.ensure_future(load.work())]
        samples = await sample_loop(args, proc.pid, data, load)
        load.stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        return samples
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def markdown(samples: list[dict[str, Any]], settle_min: float) -> str:
    rows = [
        "| minute | server RSS (MB) | store on disk (MB) | tasks completed | load avg |",
        "|---|---|---|---|---|",
    ]
    next_minute = 1
    for s in samples:
        if s["t_s"] >= next_minute * 60:
            rows.append(
                f"| {next_minute} | {s['rss_mb']} | {s['disk_mb']} | {s['completed']:,} | {s['load1']:.2f} |"
            )
            next_minute = int(s["t_s"] // 60) + 1
    settled = [s["rss_mb"] for s in samples if s["t_s"] >= settle_min * 60]
    if settled:
        middle = statistics.median(settled)
        within = sum(abs(rss - middle) <= 0.1 * middle for rss in settled)
        rows.append("")
        rows.append(
            f"RSS from minute {settle_min:g}: median {middle} MB, min {min(settled)} MB, max "
            f"{max(settled)} MB; {within} of {len(settled)} samples within 10 % of the median"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run")
    parser.add_argument("--rate", type=int, default=1500, help="tasks created per second")
    parser.add_argument("--batch", type=int, default=100, help="tasks per create batch and per claim")
    parser.add_argument("--payload-bytes", type=int, default=1024, help="approximate payload size")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=5.0, help="minutes before RSS must be flat")
    parser.add_argument("--out", default="memory-curve.jsonl", help="where samples are appended")
    parser.add_argument("--tmp-dir", default="/tmp", help="where the data directory goes")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `codeq serve` argument")
    return parser.parse_args(argv)


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)  # so that the data directory is removed
    tmp = Path(tempfile.mkdtemp(prefix="codeq-memory-bench-", dir=args.tmp_dir))
    try:
        samples = asyncio.run(measure(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(markdown(samples, args.settle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
