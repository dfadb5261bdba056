#!/usr/bin/env python3
"""Raft snapshot size, build and install time, and install memory, with N tasks (default 1,000,000).

1. fill: a child process fills a fresh RocksDB store with N pending tasks through the engine's
   apply path, in batches of --batch.
2. dump: a child process writes the store as a Raft snapshot (replication/snapshot.py's
   format, what a leader streams to a follower too far behind) and times it.
3. install: a FRESH child process opens a copy of the source store (the worst case: a
   follower whose every key is stale) with a group committer, as a follower does, and runs
   `Snapshots.deserialize` on the dump (marker, stale-key sweep, batched writes, unmark) on
   its own event loop; it reports the time, VmRSS before and VmHWM
   after (the peak), then rebuilds the engine index from the installed store (timed apart).

  .venv/bin/python bench/snapshot_bench.py [--tasks 1000000] [--tmp-dir /tmp] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restart_bench import child_fill as restart_fill
from restart_bench import mb, vm_kb


def child_fill(path: str, tasks: int, batch: int) -> dict[str, Any]:
    """Fill a fresh store with `tasks` pending tasks: restart_bench's fill, under this report's names."""
    filled = restart_fill(path, tasks, batch)
    return {"tasks_filled": filled["tasks"], "fill_s": filled["fill_s"]}


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run one step of this script in a fresh process; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def child_dump(store_path: str, dump_path: str) -> dict[str, Any]:
    from codeq.kv.rocks import RocksKV
    from codeq.replication.snapshot import read_applied, write_dump

    kv = RocksKV(store_path)
    started = time.perf_counter()
    applied = read_applied(kv)
    header = {"last": [b"\x01", applied + 2, 1], "prev": [b"\x01", applied + 1, 1], "members": []}
    with open(dump_path, "wb") as out:
        write_dump(out, header, kv)
        out.flush()
        os.fsync(out.fileno())
    dump_s = time.perf_counter() - started
    kv.close()
    return {"dump_s": round(dump_s, 2), "dump_mb": round(os.path.getsize(dump_path) / 2**20, 1)}


def child_install(store_path: str, dump_path: str) -> dict[str, Any]:
    from codeq.engine.engine import Engine
    from codeq.kv.commit import GroupCommitter
    from codeq.kv.rocks import RocksKV
    from codeq.replication.snapshot import Snapshots

    async def run() -> dict[str, Any]:
        kv = RocksKV(store_path)
        committer = GroupCommitter(kv, fsync=False)
        committer.start()
        snapshots = Snapshots(committer, RocksKV, dump_path)
        snapshots.loop = asyncio.get_running_loop()
        rss_before = vm_kb("VmRSS")
        started = time.perf_counter()
        # PySyncObj calls deserialize on its tick thread; the install runs on this loop.
        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(snapshots.deserialize(dump_path)))
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        install_s = time.perf_counter() - started
        peak = vm_kb("VmHWM")
        started = time.perf_counter()
        engine = Engine(committer)
        live = engine.recover(time.time_ns() // 1_000_000)
        recover_s = time.perf_counter() - started
        await committer.close()
        return {
            "installed": bool(done),
            "install_s": round(install_s, 2),
            "rss_before_install_mb": mb(rss_before),
            "peak_rss_install_mb": mb(peak),
            "index_rebuild_s": round(recover_s, 2),
            "live_tasks_after": live,
        }

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--tmp-dir", default="/tmp")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, *rest = args.child
        if step == "fill":
            result = child_fill(rest[0], int(rest[1]), int(rest[2]))
        elif step == "dump":
            result = child_dump(rest[0], rest[1])
        else:
            result = child_install(rest[0], rest[1])
        print(json.dumps(result))
        return
    tmp = Path(tempfile.mkdtemp(prefix="codeq-snapshot-bench-", dir=args.tmp_dir))
    try:
        source, dump, target = str(tmp / "source"), str(tmp / "dump"), str(tmp / "target")
        doc: dict[str, Any] = {"tasks": args.tasks, "load_avg_1m": os.getloadavg()[0]}
        doc |= run_child(["--child", "fill", source, str(args.tasks), str(args.batch)], 3600)
        doc |= run_child(["--child", "dump", source, dump], 3600)
        shutil.copytree(source, target)
        doc |= run_child(["--child", "install", target, dump], 3600)
        print(json.dumps(doc) if args.json else "\n".join(f"{k}: {v}" for k, v in doc.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
