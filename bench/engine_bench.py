#!/usr/bin/env python3
"""The engine alone, in process: commands/s and submit→durable latency, no HTTP.

One shard as `App._add_shard` builds it (RocksDB in a temp dir → GroupCommitter → Engine →
SingleNode), driven by `--concurrency` coroutines in closed loops on one event loop (uvloop
when importable). Scenarios:

  create   Create only.
  create-batch / cycle-batch
           The same with `--batch` tasks per command (Batch of creates, Claim count=N, Batch
           of completes): what the batch routes and the gRPC batch messages submit.
  cycle    Create → Claim (may get another coroutine's task) → Complete it; every command
           counts, and a cycle counts once its Complete is durable.
  apply    `engine.apply` alone over a memory store, no commit and no event loop: the pure
           state-machine cost of create / claim / complete.

Each run: `--warmup` seconds unrecorded, then `--duration` seconds recorded; only commands that
finish inside the window count. `--repeat N` runs every case N times and reports the median
run (by commands/s). The committer's `on_commit(commands, seconds)` gives the group-commit
batch sizes. `--profile` prints the top cProfile entries of each run (slows it down).

  .venv/bin/python bench/engine_bench.py [--fsync both|on|off] [--scenarios create,cycle,apply]
      [--concurrency 64] [--duration 10] [--warmup 2] [--repeat 1] [--node] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import math
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from codeq.app import tune_gc
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import Claimed
from codeq.engine.shards import uuid4
from codeq.kv.api import Ops
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.kv.rocks import RocksKV
from codeq.replication.api import publish_nothing
from codeq.replication.single import SingleNode

TENANT = "dev"
COMMAND = "bench"
LEASE_MS = 300_000
SCENARIOS = ("create", "cycle", "create-batch", "cycle-batch", "apply")
Submit = Callable[[Any], Coroutine[Any, Any, Any]]
ApplyFn = Callable[[Any], tuple[Ops, Any, Sequence[object]]]
PublishFn = Callable[[Sequence[object]], None]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _loop_factory() -> LoopFactory | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


LOOP_FACTORY = _loop_factory()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_create(n: int) -> c.Create:
    return c.Create(now_ms=now_ms(), task_id=uuid4(), tenant=TENANT, command=COMMAND, payload=f'{{"n":{n}}}')


def new_claim(worker: str) -> c.Claim:
    return c.Claim(now_ms=now_ms(), tenant=TENANT, worker_id=worker, commands=[COMMAND], lease_ms=LEASE_MS)


def new_complete(worker: str, task_id: str) -> c.Complete:
    return c.Complete(
        now_ms=now_ms(), tenant=TENANT, worker_id=worker, task_id=task_id, status="COMPLETED", result="{}"
    )


# --------------------------------------------------------------------------- recording


@dataclass(slots=True)
class Recorder:
    """What finished inside the measurement window."""

    recording: bool = False
    stopping: bool = False
    commands: int = 0
    cycles: int = 0
    empty_claims: int = 0
    latency_ns: list[int] = field(default_factory=list)
    cycle_ns: list[int] = field(default_factory=list)
    commits: int = 0
    committed: int = 0
    commit_seconds: float = 0.0
    apply_ns: int = 0
    gc_ns: int = 0
    _gc_started: int = 0

    def on_commit(self, count: int, seconds: float) -> None:
        if self.recording:
            self.commits += 1
            self.committed += count
            self.commit_seconds += seconds

    def on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        """A gc.callbacks hook: time spent in garbage collection inside the window."""
        if phase == "start":
            self._gc_started = time.perf_counter_ns()
        elif self.recording and self._gc_started:
            self.gc_ns += time.perf_counter_ns() - self._gc_started

    def timed(self, apply: ApplyFn) -> ApplyFn:
        """`apply` that adds its own run time to `apply_ns` inside the window."""
        clock = time.perf_counter_ns

        def timed_apply(command: Any) -> tuple[Ops, Any, Sequence[object]]:
            started = clock()
            try:
                return apply(command)
            finally:
                if self.recording:
                    self.apply_ns += clock() - started

        return timed_apply


def percentile_ms(sorted_ns: list[int], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_ns:
        return 0.0
    rank = min(len(sorted_ns), max(1, math.ceil(p / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1e6


def latency(samples: list[int]) -> dict[str, float] | None:
    if not samples:
        return None
    data = sorted(samples)
    return {
        "p50_ms": round(percentile_ms(data, 50), 4),
        "p99_ms": round(percentile_ms(data, 99), 4),
        "max_ms": round(data[-1] / 1e6, 4),
    }


@contextlib.contextmanager
def profiled(enabled: bool, label: str, top: int) -> Iterator[None]:
    if not enabled:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
        print(f"--- cProfile: {label} (top {top} by tottime) ---\n{out.getvalue()}", file=sys.stderr)


# --------------------------------------------------------------------------- closed loops


async def create_loop(submit: Callable[[Any], Coroutine[Any, Any, Any]], rec: Recorder) -> None:
    n = 0
    while not rec.stopping:
        command = new_create(n)
        n += 1
        started = time.perf_counter_ns()
        await submit(command)
        if rec.recording:
            rec.commands += 1
            rec.latency_ns.append(time.perf_counter_ns() - started)


async def cycle_loop(submit: Callable[[Any], Coroutine[Any, Any, Any]], rec: Recorder, worker: str) -> None:
    async def timed(command: c.AnyCommand) -> Any:
        started = time.perf_counter_ns()
        outcome = await submit(command)
        if rec.recording:
            rec.commands += 1
            rec.latency_ns.append(time.perf_counter_ns() - started)
        return outcome

    n = 0
    while not rec.stopping:
        started = time.perf_counter_ns()
        await timed(new_create(n))
        n += 1
        claimed: Claimed = await timed(new_claim(worker))
        if not claimed.tasks:
            rec.empty_claims += rec.recording
            continue
        for task in claimed.tasks:
            await timed(new_complete(worker, task.id))
        if rec.recording:
            rec.cycles += 1
            rec.cycle_ns.append(time.perf_counter_ns() - started)


async def create_batch_loop(submit: Submit, rec: Recorder, batch: int) -> None:
    """Creates in `Batch` commands of `batch` (what the batch routes and streams send)."""
    n = 0
    while not rec.stopping:
        items = [new_create(n + i) for i in range(batch)]
        n += batch
        started = time.perf_counter_ns()
        await submit(c.Batch(now_ms=now_ms(), items=items))
        if rec.recording:
            rec.commands += batch
            rec.latency_ns.append(time.perf_counter_ns() - started)


async def cycle_batch_loop(submit: Submit, rec: Recorder, worker: str, batch: int) -> None:
    """Batch create → claim `batch` at once → one Batch of completes; a command per task each."""
    n = 0
    while not rec.stopping:
        started = time.perf_counter_ns()
        await submit(c.Batch(now_ms=now_ms(), items=[new_create(n + i) for i in range(batch)]))
        n += batch
        claim = c.Claim(
            now_ms=now_ms(),
            tenant=TENANT,
            worker_id=worker,
            commands=[COMMAND],
            lease_ms=LEASE_MS,
            count=batch,
        )
        claimed: Claimed = await submit(claim)
        if not claimed.tasks:
            rec.empty_claims += rec.recording
            continue
        completes = [new_complete(worker, task.id) for task in claimed.tasks]
        await submit(c.Batch(now_ms=now_ms(), items=list(completes)))
        if rec.recording:
            rec.commands += batch + 2 * len(claimed.tasks)
            rec.cycles += len(claimed.tasks)
            rec.cycle_ns.append(time.perf_counter_ns() - started)


def make_apply(engine: Engine, node: bool) -> tuple[ApplyFn, PublishFn]:
    """engine.apply and what its replicator publishes the events to: with `node`, the server's
    own listeners (waiter wake-ups and task metrics, as `app/shards.py` wires them), else
    nothing."""
    if node:
        from codeq.observability.metrics import Metrics
        from codeq.service.node import Node
        from codeq.service.waiters import Waiters

        return engine.apply, Node(Waiters(), Metrics()).publisher(engine)
    return engine.apply, publish_nothing


async def run_store(scenario: str, fsync: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One timed run of `create` or `cycle` on a fresh RocksDB store."""
    tmp = tempfile.mkdtemp(prefix="codeq-engine-bench-", dir=args.tmp_dir)
    rec = Recorder()
    try:
        committer = GroupCommitter(RocksKV(tmp), fsync=fsync, name="bench-kv", on_commit=rec.on_commit)
        committer.start()
        engine = Engine(committer)
        engine.recover(now_ms())
        apply, publish = make_apply(engine, args.node)
        submit = SingleNode(rec.timed(apply), committer, publish).submit
        if scenario == "create":
            loops = [create_loop(submit, rec) for _ in range(args.concurrency)]
        elif scenario == "create-batch":
            loops = [create_batch_loop(submit, rec, args.batch) for _ in range(args.concurrency)]
        elif scenario == "cycle-batch":
            loops = [cycle_batch_loop(submit, rec, f"w{i}", args.batch) for i in range(args.concurrency)]
        else:
            loops = [cycle_loop(submit, rec, f"w{i}") for i in range(args.concurrency)]
        workers = [asyncio.ensure_future(loop) for loop in loops]
        gc.callbacks.append(rec.on_gc)
        try:
            await asyncio.sleep(args.warmup)
            with profiled(args.profile, f"{scenario} fsync={'on' if fsync else 'off'}", args.profile_top):
                rec.recording = True
                cpu0, t0 = time.process_time(), time.perf_counter()
                await asyncio.sleep(args.duration)
                rec.recording = False
                cpu, window = time.process_time() - cpu0, time.perf_counter() - t0
        finally:
            rec.stopping = True
            gc.callbacks.remove(rec.on_gc)
            await asyncio.gather(*workers, return_exceptions=True)
            await committer.close()
        for worker in workers:
            if worker.exception() is not None:
                raise RuntimeError(f"a submitter failed: {worker.exception()!r}")
        live = len(engine.index.tasks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "scenario": scenario,
        "fsync": fsync,
        "concurrency": args.concurrency,
        "window_s": round(window, 3),
        "commands": rec.commands,
        "commands_per_s": round(rec.commands / window, 1),
        "cycles_per_s": round(rec.cycles / window, 1) if scenario.startswith("cycle") else None,
        "empty_claims": rec.empty_claims,
        "latency": latency(rec.latency_ns),
        "cycle_latency": latency(rec.cycle_ns),
        "commits_per_s": round(rec.commits / window, 1),
        "commands_per_commit": round(rec.committed / rec.commits, 1) if rec.commits else None,
        "commit_ms_mean": round(1000 * rec.commit_seconds / rec.commits, 3) if rec.commits else None,
        "cpu_pct": round(100 * cpu / window, 1),
        "apply_us_per_command": round(rec.apply_ns / rec.commands / 1000, 2) if rec.commands else None,
        "total_us_per_command": round(1e6 * window / rec.commands, 2) if rec.commands else None,
        "gc_pct": round(100 * rec.gc_ns / 1e9 / window, 1),
        "live_tasks_at_end": live,
        "node_apply": args.node,
    }


# --------------------------------------------------------------------------- pure apply


def run_apply(args: argparse.Namespace) -> dict[str, Any]:
    """engine.apply over a memory store in a tight loop: create, claim and complete of the
    same task, each timed on its own. The ops are written to the memory store between the
    timed applies (the engine reads a live task's record from the store: issue 18).
    """
    kv = MemoryKV()
    engine = Engine(kv)
    engine_apply, publish = make_apply(engine, args.node)

    def apply(command: Any) -> tuple[Ops, Any, Sequence[object]]:
        applied = engine_apply(command)
        publish(applied[2])  # the server publishes once the write is durable; here at once
        return applied

    samples: dict[str, list[int]] = {"create": [], "claim": [], "complete": []}
    worker, n = "w0", 0
    clock = time.perf_counter_ns
    deadline = time.monotonic() + args.warmup
    with profiled(args.profile, "apply (memory)", args.profile_top):
        for recording in (False, True):
            while time.monotonic() < deadline:
                for _ in range(1000):
                    create, claim = new_create(n), new_claim(worker)
                    n += 1
                    t0 = clock()
                    created = apply(create)
                    t1 = clock()
                    kv.write(created[0], sync=False)
                    t1b = clock()
                    claimed_ops, claimed, _ = apply(claim)
                    t2 = clock()
                    kv.write(claimed_ops, sync=False)
                    complete = new_complete(worker, claimed.tasks[0].id)
                    t3 = clock()
                    completed = apply(complete)
                    t4 = clock()
                    kv.write(completed[0], sync=False)
                    if recording:
                        samples["create"].append(t1 - t0)
                        samples["claim"].append(t2 - t1b)
                        samples["complete"].append(t4 - t3)
            deadline = time.monotonic() + args.duration
    total_ns = sum(sum(v) for v in samples.values())
    commands = sum(len(v) for v in samples.values())
    per_kind = {
        kind: {
            "mean_us": round(statistics.fmean(v) / 1000, 2),
            "p50_us": round(percentile_ms(sorted(v), 50) * 1000, 2),
            "p99_us": round(percentile_ms(sorted(v), 99) * 1000, 2),
        }
        for kind, v in samples.items()
    }
    all_ns = sorted(x for v in samples.values() for x in v)
    return {
        "scenario": "apply",
        "fsync": None,
        "commands": commands,
        "apply_us_mean": round(total_ns / commands / 1000, 2),
        "commands_per_s": round(commands / (total_ns / 1e9), 1),
        "cycles_per_s": round(len(samples["complete"]) / (total_ns / 1e9), 1),
        "latency": latency(all_ns),
        "per_command": per_kind,
        "node_apply": args.node,
    }


# --------------------------------------------------------------------------- driver


def cases(args: argparse.Namespace) -> list[tuple[str, bool | None]]:
    fsyncs = {"both": [True, False], "on": [True], "off": [False]}[args.fsync]
    out: list[tuple[str, bool | None]] = []
    for scenario in args.scenarios:
        if scenario == "apply":
            out.append(("apply", None))
        else:
            out += [(scenario, fsync) for fsync in fsyncs]
    return out


def run_case(scenario: str, fsync: bool | None, args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        gc.collect()
        if scenario == "apply":
            runs.append(run_apply(args))
        else:
            assert fsync is not None
            with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
                runs.append(runner.run(run_store(scenario, fsync, args)))
    ranked = sorted(runs, key=lambda r: float(r["commands_per_s"]))
    median = dict(ranked[len(ranked) // 2])
    median["runs_commands_per_s"] = [r["commands_per_s"] for r in runs]
    return median


def _pair(lat: dict[str, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not lat:
        return "–"
    return f"{lat['p50_ms'] * scale:.{digits}f} / {lat['p99_ms'] * scale:.{digits}f}"


def markdown(results: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | fsync | C | commands/s | cycles/s | cmd p50 / p99 | cycle p50 / p99 ms "
        "| cmds/commit | commits/s | CPU % | apply µs/cmd | wall µs/cmd | GC % |\n|" + "---|" * 13
    )
    rows = [head]
    for r in results:
        if r["scenario"] == "apply":
            cells = [
                "apply (memory, no commit)", "–", 1, f"{r['commands_per_s']:,.0f}",
                f"{r['cycles_per_s']:,.0f}", _pair(r["latency"], 1000) + " µs", "–", "–", "–", "–",
                r["apply_us_mean"], r["apply_us_mean"], "–",
            ]  # fmt: skip
        else:
            cells = [
                r["scenario"], "on" if r["fsync"] else "off", r["concurrency"],
                f"{r['commands_per_s']:,.0f}",
                f"{r['cycles_per_s']:,.0f}" if r["cycles_per_s"] is not None else "–",
                _pair(r["latency"]) + " ms", _pair(r["cycle_latency"]),
                r["commands_per_commit"], f"{r['commits_per_s']:,.0f}", r["cpu_pct"],
                r["apply_us_per_command"], r["total_us_per_command"], r["gc_pct"],
            ]  # fmt: skip
        rows.append("| " + " | ".join(str(x) for x in cells) + " |")
    apply = next((r for r in results if r["scenario"] == "apply"), None)
    if apply is not None:
        parts = [f"{k} {v['mean_us']} µs" for k, v in apply["per_command"].items()]
        rows.append(f"\napply mean per command: {', '.join(parts)} (all: {apply['apply_us_mean']} µs)")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--scenarios", default="create,cycle,apply", help="comma-separated: " + ",".join(SCENARIOS)
    )
    parser.add_argument("--fsync", choices=("both", "on", "off"), default="both")
    parser.add_argument("--concurrency", "-c", type=int, default=64, help="submitter coroutines")
    parser.add_argument("--batch", type=int, default=32, help="tasks per Batch in the *-batch scenarios")
    parser.add_argument("--duration", type=float, default=10.0, help="measurement window, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded warm-up, s")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is reported")
    parser.add_argument("--node", action="store_true", help="apply through service.Node (waiters, metrics)")
    parser.add_argument("--tmp-dir", default="/tmp", help="where the temp stores go")
    parser.add_argument("--profile", action="store_true", help="cProfile each run, top entries to stderr")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.repeat < 1:
        parser.error("--concurrency and --repeat must be >= 1, --duration > 0, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    tune_gc()  # the server's collector settings
    args = parse_args(argv)
    results = []
    for scenario, fsync in cases(args):
        results.append(run_case(scenario, fsync, args))
        if not args.json:
            print(f"done: {scenario} fsync={fsync}", file=sys.stderr, flush=True)
    if args.json:
        doc = {
            "loop": "uvloop" if LOOP_FACTORY is not None else "asyncio",
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "results": results,
        }
        print(json.dumps(doc))
    else:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
