#!/usr/bin/env python3
"""Restart time and memory with N pending tasks (default 1,000,000).

1. fill: a child process applies `Create` commands in `Batch`es of `--batch` to an Engine
   over a fresh RocksDB store and writes each batch's ops with `kv.write(ops, sync=False)`
   (no HTTP, no group commit), then closes the store. Payload `{"n":<i>}` (padded with random
   text to `--payload-bytes` when given), tenant `dev`, command `bench`.
2. recover (`--repeat` times): a FRESH child process opens the store and runs
   `Engine.recover(now_ms)` over a GroupCommitter with the collector paused, as the server
   does; it reports the time to open and to recover, VmRSS after imports / after open / after
   recovery (from /proc/self/status) and the RSS per pending task.
3. server (`--repeat` times): `codeq serve --dev --host 127.0.0.1 --port <free> --data <dir>`
   on the filled store, timed from spawn until `GET /readyz` answers 200; then SIGTERM.

Every run is reported and the median is summarised. The store's files are in the page cache
(just written), so this is a warm restart, not a cold-disk one. Everything lives in a temp
dir under `--tmp-dir` (default /tmp), deleted at the end, and each step is time-bounded.

`--store DIR` keeps the filled store in DIR (filled only when DIR does not exist yet), so
several runs restart the same tasks. `--tree NAME=SRC` (repeatable) runs steps 2 and 3 with
`PYTHONPATH=SRC` for each tree in turn, `--repeat` rounds interleaved (A B A B ...): old code
against new on one store (`git archive <commit> src | tar -x -C /tmp/old`).

  .venv/bin/python bench/restart_bench.py [--tasks 1000000] [--batch 1000] [--repeat 1]
      [--payload-bytes 0] [--no-server] [--store DIR] [--tree NAME=SRC ...] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

HOST = "127.0.0.1"
TENANT = "dev"
COMMAND = "bench"
_RECOVERED = re.compile(r"recovered (\d+) live task\(s\) in ([0-9.]+)s")


def vm_kb(key: str, pid: int | str = "self") -> int | None:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mb(kb: int | None) -> float | None:
    return round(kb / 1024, 1) if kb is not None else None


def disk_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- child steps


def child_fill(path: str, tasks: int, batch: int, payload_bytes: int = 0) -> dict[str, Any]:
    """Fill a fresh store with `tasks` pending tasks through the engine's apply path."""
    from codeq.engine import commands as c
    from codeq.engine.engine import Engine
    from codeq.kv.rocks import RocksKV

    started = time.perf_counter()
    kv = RocksKV(path)
    engine = Engine(kv)
    now_ms = time.time_ns() // 1_000_000
    pad = max(payload_bytes - 20, 0)
    pool = [os.urandom(pad).hex()[:pad] for _ in range(256)] if pad else [""]
    for first in range(0, tasks, batch):
        items: list[c.Create | c.Complete] = [
            c.Create(
                now_ms=now_ms,
                task_id=str(uuid.uuid4()),
                tenant=TENANT,
                command=COMMAND,
                payload=f'{{"n":{i},"p":"{pool[i % len(pool)]}"}}' if pad else f'{{"n":{i}}}',
            )
            for i in range(first, min(first + batch, tasks))
        ]
        ops, _, _ = engine.apply(c.Batch(now_ms=now_ms, items=items))
        kv.write(ops, sync=False)
    live = len(engine.index.tasks)
    fill_s = time.perf_counter() - started
    kv.close()
    return {"tasks": live, "fill_s": round(fill_s, 2), "fill_tasks_per_s": round(live / fill_s)}


def child_recover(path: str, spawned_at: float) -> dict[str, Any]:
    """Open the store and rebuild the index, as the server does at start."""
    from codeq.engine.engine import Engine
    from codeq.kv.commit import GroupCommitter
    from codeq.kv.rocks import RocksKV

    rss_imports = vm_kb("VmRSS")
    t0 = time.perf_counter()
    kv = RocksKV(path)
    t1 = time.perf_counter()
    rss_open = vm_kb("VmRSS")
    engine = Engine(GroupCommitter(kv, fsync=True, name="bench-kv"))
    cpu = time.process_time()
    gc.disable()  # as the server does around recovery (app/shards.py)
    live = engine.recover(time.time_ns() // 1_000_000)
    gc.enable()
    gc.freeze()
    t2 = time.perf_counter()
    cpu = time.process_time() - cpu
    ready_since_spawn = time.time() - spawned_at
    rss_after, hwm = vm_kb("VmRSS"), vm_kb("VmHWM")
    kv.close()
    per_task = (rss_after - rss_open) * 1024 / live if rss_after and rss_open and live else None
    return {
        "live_tasks": live,
        "open_s": round(t1 - t0, 3),
        "recover_s": round(t2 - t1, 3),
        "recover_cpu_s": round(cpu, 3),  # CPU time: less at the mercy of a busy machine
        "ready_s": round(t2 - t0, 3),
        "spawn_to_ready_s": round(ready_since_spawn, 3),
        "rss_imports_mb": mb(rss_imports),
        "rss_open_mb": mb(rss_open),
        "rss_after_mb": mb(rss_after),
        "peak_rss_mb": mb(hwm),
        "rss_bytes_per_task": round(per_task) if per_task is not None else None,
    }


def run_child(args: list[str], timeout: float, src: str | None = None) -> dict[str, Any]:
    """Run this script in a child step (importing codeq from `src` when given); its last
    stdout line is a JSON object."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=tree_env(src)
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0:2]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


# --------------------------------------------------------------------------- the real server


def _readyz(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def tree_env(src: str | None) -> dict[str, str] | None:
    """The environment of a child that runs the tree at `src` (None: this process's)."""
    return None if src is None else {**os.environ, "PYTHONPATH": src}


def server_start(
    codeq: str, data: Path, log_path: Path, timeout: float, src: str | None = None
) -> dict[str, Any]:
    """Spawn `codeq serve` on the store, time it to /readyz 200, then SIGTERM it."""
    port = free_port()
    cmd = [codeq, "serve", "--dev", "--host", HOST, "--port", str(port), "--data", str(data)]
    # Free stream ports too: --dev's defaults (9091/9092) may be taken by another server.
    cmd += [
        "--producer-stream-addr",
        f"{HOST}:{free_port()}",
        "--worker-stream-addr",
        f"{HOST}:{free_port()}",
    ]
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=tree_env(src),
        )
    try:
        deadline = t0 + timeout
        while not _readyz(port):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"server not ready after {timeout:.0f}s")
            time.sleep(0.02)
        ready_s = time.perf_counter() - t0
        rss, hwm = vm_kb("VmRSS", proc.pid), vm_kb("VmHWM", proc.pid)
        t1 = time.perf_counter()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        exit_code = proc.wait(60)
        stop_s = time.perf_counter() - t1
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    match = _RECOVERED.search(log_path.read_text(errors="replace"))
    return {
        "ready_s": round(ready_s, 3),
        "server_recovery_s": float(match.group(2)) if match else None,
        "live_tasks": int(match.group(1)) if match else None,
        "rss_mb": mb(rss),
        "peak_rss_mb": mb(hwm),
        "stop_s": round(stop_s, 3),
        "exit_code": exit_code,
    }


# --------------------------------------------------------------------------- driver


def median_of(runs: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def fill_store(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    if args.store and data.exists():
        log(f"reusing the store in {data}")
        return {"tasks": args.tasks, "fill_s": None, "fill_tasks_per_s": None, "disk_mb": disk_mb(data)}
    log(f"filling {args.tasks:,} tasks ...")
    child = ["--child", "fill", "--data", str(data), "--tasks", str(args.tasks), "--batch", str(args.batch)]
    child += ["--payload-bytes", str(args.payload_bytes)]
    fill = run_child(child, args.fill_timeout)
    fill["disk_mb"] = disk_mb(data)
    log(f"filled in {fill['fill_s']} s; recovering ...")
    return fill


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    data = Path(args.store) if args.store else tmp / "data"
    fill = fill_store(args, data)
    trees: list[tuple[str, str | None]] = [tuple(t.split("=", 1)) for t in args.tree] or [("this", None)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"recover": [], "server": []} for name, _ in trees
    }
    for round_no in range(args.repeat):
        for name, src in trees:
            load = os.getloadavg()[0]
            child = ["--child", "recover", "--data", str(data), "--spawned-at", repr(time.time())]
            runs[name]["recover"].append({**run_child(child, args.step_timeout, src), "load": round(load, 2)})
            if args.server:
                log(f"round {round_no + 1}, {name}: server start ...")
                log_path = tmp / f"server-{name}-{round_no}.log"
                runs[name]["server"].append(server_start(args.codeq, data, log_path, args.step_timeout, src))
    return {
        "tasks": args.tasks,
        "batch": args.batch,
        "fill": fill,
        "disk_mb_end": disk_mb(data),
        "trees": {name: summary(found) for name, found in runs.items()},
    }


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    recover, server = runs["recover"], runs["server"]
    return {
        "recover_runs": recover,
        "server_runs": server,
        "recover": {k: median_of(recover, k) for k in recover[0]} if recover else {},
        "server": {k: median_of(server, k) for k in server[0]} if server else {},
    }


def disk_mb(path: Path) -> float:
    return round(disk_bytes(path) / 2**20, 1)


def markdown(doc: dict[str, Any]) -> str:
    return "\n\n".join(tree_markdown(doc, name, found) for name, found in doc["trees"].items())


def tree_markdown(doc: dict[str, Any], name: str, tree: dict[str, Any]) -> str:
    rec, srv, fill = tree["recover"], tree["server"], doc["fill"]
    runs = ", ".join(f"{r['ready_s']}" for r in tree["recover_runs"])
    cpu_runs = ", ".join(f"{r['recover_cpu_s']}" for r in tree["recover_runs"])
    srv_runs = ", ".join(f"{r['ready_s']}" for r in tree["server_runs"]) or "–"
    fill_rate = f"{fill['fill_s']} s ({fill['fill_tasks_per_s']:,} tasks/s)" if fill["fill_s"] else "reused"
    rows = [
        f"| measure ({name}) | value |",
        "|---|---|",
        f"| pending tasks (filled / recovered) | {fill['tasks']:,} / {int(rec['live_tasks']):,} |",
        f"| fill (engine apply, Batch of {doc['batch']}, sync=False) | {fill_rate} |",
        f"| on-disk size after fill / at end | {fill['disk_mb']} MB / {doc['disk_mb_end']} MB |",
        f"| open store (median) | {rec['open_s']} s |",
        f"| Engine.recover (median; its CPU time) | {rec['recover_s']} s ({rec['recover_cpu_s']} s CPU) |",
        f"| Engine.recover CPU time (runs) | {cpu_runs} s |",
        f"| open + recover: ready (median; runs) | {rec['ready_s']} s ({runs}) |",
        f"| process spawn → ready, incl. imports (median) | {rec['spawn_to_ready_s']} s |",
        f"| RSS after imports / open / recovery | {rec['rss_imports_mb']} / {rec['rss_open_mb']} / "
        f"{rec['rss_after_mb']} MB (peak {rec['peak_rss_mb']} MB) |",
        f"| RSS per pending task | {rec['rss_bytes_per_task']} B |",
        f"| 1-min load average before each recover (median) | {rec['load']} |",
    ]
    if srv:
        rows += [
            f"| `codeq serve` spawn → /readyz 200 (median; runs) | {srv['ready_s']} s ({srv_runs}) |",
            f"| server's own recovery time (its log) | {srv['server_recovery_s']} s "
            f"({int(srv['live_tasks']):,} live tasks) |",
            f"| server RSS when ready | {srv['rss_mb']} MB (peak {srv['peak_rss_mb']} MB) |",
            f"| SIGTERM → exit | {srv['stop_s']} s |",
        ]
    return "\n".join(rows)


def log(message: str) -> None:
    print(f"restart_bench: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="pending tasks to fill")
    parser.add_argument("--batch", type=int, default=1000, help="creates per Batch while filling")
    parser.add_argument("--repeat", type=int, default=1, help="recover and server runs; medians reported")
    parser.add_argument("--payload-bytes", type=int, default=0, help="pad payloads to this size")
    parser.add_argument("--no-server", dest="server", action="store_false", help="skip `codeq serve`")
    parser.add_argument("--codeq", default=str(Path(sys.executable).parent / "codeq"), help="executable")
    parser.add_argument("--tmp-dir", default="/tmp", help="where the temp store goes")
    parser.add_argument("--fill-timeout", type=float, default=900.0, help="bound on the fill, s")
    parser.add_argument("--step-timeout", type=float, default=300.0, help="bound on each recover/start, s")
    parser.add_argument("--store", help="keep the filled store here (reused when it exists)")
    parser.add_argument("--tree", action="append", default=[], help="NAME=SRC: run steps 2-3 from SRC")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    # internal: the child steps
    parser.add_argument("--child", choices=("fill", "recover"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.batch < 1 or args.repeat < 1:
        parser.error("--tasks, --batch and --repeat must be >= 1")
    return args


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "fill":
        print(json.dumps(child_fill(args.data, args.tasks, args.batch, args.payload_bytes)))
        return 0
    if args.child == "recover":
        print(json.dumps(child_recover(args.data, args.spawned_at)))
        return 0
    signal.signal(signal.SIGTERM, _raise_exit)  # so that the temp dir is removed
    tmp = Path(tempfile.mkdtemp(prefix="codeq-restart-bench-", dir=args.tmp_dir))
    try:
        doc = measure(args, tmp)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"restart_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(doc) if args.json else markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
