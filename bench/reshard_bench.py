#!/usr/bin/env python3
"""`codeq reshard`: how long rewriting a stopped node's data takes for N tasks.

Fills a one-shard store through the engine's apply path with `--tasks` tasks (a quarter with
idempotency keys; half claimed and completed with a result), then times the real CLI,
`codeq reshard` 1 → 4 shards and 4 → 2, each run including its verification pass.

  .venv/bin/python bench/reshard_bench.py [--tasks 200000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODEQ = str(Path(sys.executable).parent / "codeq")
TENANT = "dev"
BATCH = 1000


def fill(path: str, tasks: int) -> None:
    from codeq.engine import commands as c
    from codeq.engine.engine import Engine
    from codeq.kv.rocks import RocksKV

    kv = RocksKV(path)
    engine = Engine(kv)
    now_ms = time.time_ns() // 1_000_000
    for first in range(0, tasks, BATCH):
        items: list[c.Create | c.Complete] = [
            c.Create(
                now_ms=now_ms,
                task_id=str(uuid.uuid4()),
                tenant=TENANT,
                command="bench",
                payload=f'{{"n":{n}}}',
                idempotency_key=f"key-{n}" if n % 4 == 0 else "",
            )
            for n in range(first, min(first + BATCH, tasks))
        ]
        ops, _, _ = engine.apply(c.Batch(now_ms=now_ms, items=items))
        kv.write(ops, sync=False)
        claim = c.Claim(
            now_ms=now_ms, tenant=TENANT, worker_id="w", commands=["bench"], lease_ms=60_000, count=BATCH // 2
        )
        ops, claimed, _ = engine.apply(claim)
        kv.write(ops, sync=False)
        done: list[c.Create | c.Complete] = [
            c.Complete(
                now_ms=now_ms,
                tenant=TENANT,
                worker_id="w",
                task_id=t.id,
                status="COMPLETED",
                result='{"ok":true}',
            )
            for t in claimed.tasks
        ]
        ops, _, _ = engine.apply(c.Batch(now_ms=now_ms, items=done))
        kv.write(ops, sync=True)
    kv.close()


def timed_reshard(source: Path, target: Path, shards: int) -> dict[str, object]:
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [CODEQ, "reshard", "--from", str(source), "--to", str(target), "--shards", str(shards), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    report = json.loads(done.stdout)
    return {"shards": shards, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "keys": report["keys"],
            "keys_per_s": round(report["keys"] / seconds), "tasks": report["tasks"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reshard-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        fill(str(root / "one"), args.tasks)
        print(f"filled {args.tasks} tasks in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        print(json.dumps(timed_reshard(root / "one", root / "four", 4)))
        print(json.dumps(timed_reshard(root / "four", root / "two", 2)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
