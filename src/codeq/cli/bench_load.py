"""The load behind `codeq bench`: producers and a worker built on the SDK, counting only
what the server acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from codeq.client import AsyncProducer, AsyncWorker, Job, TaskSpec

COMMAND = "bench"
_DONE = {"ok": True}  # every handler's result (only ever encoded, never changed)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    mode: str  # http | http-batch | grpc | grpc-batch
    producer_url: str
    worker_url: str
    http_url: str
    producer_token: str
    worker_token: str
    producers: int = 4
    concurrency: int = 64
    batch: int = 1
    payload_bytes: int = 16
    count: int = 0  # stop after this many acknowledged cycles (0: use duration)
    duration: float = 10.0
    warmup: float = 2.0
    max_backlog: int = 2_000  # see `codeq bench --max-backlog`
    server_pid: int = 0  # a spawned server whose CPU time is reported (0: not known)
    start_at: float = 0.0  # wall-clock start of the window shared by client processes (0: after warmup)


@dataclass(slots=True)
class Tally:
    """What happened inside the measurement window (everything acknowledged by the server)."""

    recording: bool = False
    created: int = 0
    claimed: int = 0
    cycles: int = 0
    errors: int = 0
    # One latency per create request (a batch is one request: its tasks share it, and every
    # request of a mode carries the same number of tasks, so the percentiles are the tasks').
    create_ms: list[float] = field(default_factory=list)
    cycle_ms: list[float] = field(default_factory=list)  # one per task: create sent to result ack
    started: float = 0.0
    elapsed: float = 0.0
    client_cpu_s: float = 0.0  # CPU time of this process (producers and worker) in the window
    server_cpu_s: float | None = None  # of the spawned server, where /proc tells


class Load:
    def __init__(self, plan: LoadPlan, progress: Callable[[Tally], None] | None = None) -> None:
        self.plan = plan
        self.tally = Tally()
        self._progress = progress
        # The load's client processes share one backlog: a task created here may be completed
        # by another process's worker, so what a process has outstanding is what it created
        # less what its worker completed, whoever created it (their sum is the backlog).
        self._outstanding = 0
        self._room = asyncio.Event()
        self._room.set()
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        # The payload carries when its create was sent (wall clock, which every process of
        # the machine shares), so the worker that completes it measures create -> result
        # whichever process created it.
        self._padding = "x" * max(plan.payload_bytes - 32, 0)

    async def run(self) -> Tally:
        plan = self.plan
        worker = AsyncWorker(
            plan.worker_url, plan.worker_token, concurrency=plan.concurrency, batch_size=plan.batch,
            lease_seconds=300, on_ack=self._on_ack, http_url=plan.http_url,
        )  # fmt: skip
        worker.register(COMMAND, self._handle)
        async with AsyncProducer(plan.producer_url, plan.producer_token, http_url=plan.http_url) as producer:
            running = asyncio.ensure_future(worker.run(handle_signals=False))
            producing = [asyncio.ensure_future(self._produce(producer)) for _ in range(plan.producers)]
            try:
                await self._measure()
            finally:
                self._stop.set()
                self._room.set()
                worker.stop()
                await asyncio.gather(*producing, return_exceptions=True)
                await asyncio.gather(running, return_exceptions=True)
        return self.tally

    async def _measure(self) -> None:
        plan = self.plan
        await asyncio.sleep(max(plan.start_at - time.time(), 0.0) if plan.start_at else plan.warmup)
        tally = self.tally
        tally.recording, tally.started = True, time.perf_counter()
        client_cpu, server_cpu = time.process_time(), process_cpu_seconds(plan.server_pid)
        deadline = tally.started + (plan.duration if not plan.count else 24 * 3600)
        while time.perf_counter() < deadline and not self._done.is_set():
            if self._progress is not None:
                self._progress(tally)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), min(0.25, max(deadline - time.perf_counter(), 0)))
        tally.elapsed = time.perf_counter() - tally.started
        tally.recording = False
        tally.client_cpu_s = time.process_time() - client_cpu
        server_cpu_end = process_cpu_seconds(plan.server_pid)
        if server_cpu is not None and server_cpu_end is not None:
            tally.server_cpu_s = server_cpu_end - server_cpu

    async def _produce(self, producer: AsyncProducer) -> None:
        batch = self.plan.batch if self.plan.mode.endswith("batch") else 1
        while not self._stop.is_set():
            await self._room.wait()
            if self._stop.is_set():
                return
            started = time.perf_counter()
            payload = {"p": self._padding, "sent": time.time()}
            try:
                if batch > 1:
                    # One spec for the whole batch: its tasks were all sent at once.
                    tasks = await producer.create_many([TaskSpec(command=COMMAND, payload=payload)] * batch)
                else:
                    tasks = [await producer.create(COMMAND, payload)]
            except Exception:  # a failed create is counted, the load goes on
                self.tally.errors += 1
                continue
            self._created(tasks, started)

    def _created(self, tasks: list[Any], started: float) -> None:
        tally = self.tally
        created = 0
        for task in tasks:
            if getattr(task, "id", None) is None:
                tally.errors += 1
            else:
                created += 1
        self._outstanding += created
        if tally.recording and created:
            tally.created += created
            tally.create_ms.append((time.perf_counter() - started) * 1000)
        if self._outstanding >= self.plan.max_backlog:
            self._room.clear()

    async def _handle(self, job: Job) -> dict[str, bool]:
        if self.tally.recording:
            self.tally.claimed += 1
        return _DONE

    def _on_ack(self, job: Job, outcome: str) -> None:
        self._outstanding -= 1
        if self._outstanding < self.plan.max_backlog:
            self._room.set()
        if outcome != "completed":
            self.tally.errors += 1
            return
        tally = self.tally
        if tally.recording:
            tally.cycles += 1
            sent = _sent_at(job.payload)
            if sent is not None:
                tally.cycle_ms.append((time.time() - sent) * 1000)
            if self.plan.count and tally.cycles >= self.plan.count:
                self._done.set()


def _sent_at(payload: Any) -> float | None:
    """When the task's create was sent (our payloads say; another load's tasks do not)."""
    sent = payload.get("sent") if isinstance(payload, dict) else None
    return sent if isinstance(sent, float) else None


def run_async(load: Coroutine[Any, Any, Tally]) -> Tally:
    """Run the load on uvloop when it is installed (the `server` extra has it), like the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load)
    return uvloop.run(load)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` and its children (a supervisor's shard
    processes) so far, from /proc (None where unknown)."""
    found = server_cpu_seconds(pid)
    return sum(found.values()) if found else None


def server_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds by process: `server` for `pid`, `shard<k>` for each shard process under it."""
    found: dict[str, float] = {}
    for name, process in server_processes(pid).items():
        seconds = _cpu_seconds(process)
        if seconds is not None:
            found[name] = seconds
    return found


def server_processes(pid: int) -> dict[str, int]:
    """`server` for `pid`, `shard<k>` for each shard process under it (empty: no such pid)."""
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        return {}
    found = {"server": pid}
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            children = [int(child) for child in listing.read().split()]
    except OSError:
        children = []
    for number, child in enumerate(children):
        found[f"shard{_shard_of(child, number)}"] = child
    return found


def _shard_of(pid: int, default: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            for entry in environ.read().split(b"\0"):
                if entry.startswith(b"CODEQ_SHARD_PROCESS="):
                    return entry.split(b"=", 1)[1].decode()
    except OSError:
        pass
    return str(default)


def _cpu_seconds(pid: int) -> float | None:
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the parenthesised name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]
