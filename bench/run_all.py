#!/usr/bin/env python3
"""`make bench`: every benchmark, each run `--repeat` times (median reported), one report.

  engine    bench/engine_bench.py: create / cycle, single and batched, fsync on and off, and
            apply alone
  restart   bench/restart_bench.py: restart with `--tasks` pending tasks (default 1,000,000)
  http      bench/run_http.py: create, claim and cycle, fsync on and off, `--users` users,
            1 shard (and 4 shards for cycle), `--http-duration` s windows

The report (markdown, with the machine: CPU, cores, kernel, Python, date) goes to stdout
and to `--out` (default bench/results-latest.md), ready to paste into docs/benchmarks.md.
A step that fails is reported as such and the others still run. Every child run is
time-bounded; SIGTERM/Ctrl-C stops the running child (which cleans up after itself).

  .venv/bin/python bench/run_all.py [--only engine,restart,http] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_bench  # sibling modules (bench/ is not a package)
import restart_bench
import run_http

BENCH = Path(__file__).resolve().parent

STEPS = ("engine", "restart", "http")
HTTP_CASES = [("create", 1), ("claim", 1), ("cycle", 1), ("cycle", 4)]


def log(message: str) -> None:
    print(f"run_all: {message}", file=sys.stderr, flush=True)


def run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run a bench script that prints one JSON object last; SIGTERM it (then SIGKILL) on timeout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(cmd[1:3])}") from None
    finally:
        if proc.poll() is None:  # interrupted: let the child clean up (temp dirs, servers)
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            if proc.poll() is None:
                proc.kill()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"exit {proc.returncode}: {err.strip()[-1500:]}")
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


def script(name: str) -> list[str]:
    return [sys.executable, str(BENCH / name)]


# --------------------------------------------------------------------------- the steps


def engine_step(args: argparse.Namespace) -> str:
    cmd = [*script("engine_bench.py"), "--json", "--repeat", str(args.repeat)]
    cmd += ["--scenarios", "create,cycle,create-batch,cycle-batch,apply"]
    cmd += ["--duration", str(args.engine_duration), "--warmup", str(args.warmup)]
    timeout = 10 * args.repeat * (args.engine_duration + args.warmup + 30) + 120
    doc = run_json(cmd, timeout)
    head = (
        f"One shard in process (RocksDB → GroupCommitter → Engine → SingleNode, no HTTP), "
        f"{doc['concurrency']} submitter coroutines in closed loops on {doc['loop']}; median of "
        f"{doc['repeat']} × {doc['duration_s']:g} s windows. Latency is submit → durable per command.\n"
    )
    return head + "\n" + engine_bench.markdown(doc["results"])


def restart_step(args: argparse.Namespace) -> str:
    cmd = [*script("restart_bench.py"), "--json", "--tasks", str(args.tasks), "--repeat", str(args.repeat)]
    doc = run_json(cmd, timeout=900 + 2 * args.repeat * 300)
    return f"Median of {args.repeat} runs, each in a fresh process.\n\n" + restart_bench.markdown(doc)


def http_step(args: argparse.Namespace) -> str:
    header = run_http.markdown_header().split("\n")
    rows = [header[0] + " runs ops/s |", header[1] + "---|"]
    for mode, shards in HTTP_CASES:
        for fsync in (True, False):
            cmd = [*script("run_http.py"), "--json", "--mode", mode, "--users", str(args.users)]
            cmd += ["--duration", str(args.http_duration), "--warmup", str(args.warmup)]
            cmd += ["--shards", str(shards)] + ([] if fsync else ["--no-fsync"])
            label = f"{mode} shards={shards} fsync={'on' if fsync else 'off'}"
            runs = []
            for i in range(args.repeat):
                log(f"http {label} run {i + 1}/{args.repeat}")
                try:
                    runs.append(run_json(cmd, 30 + 120 + args.warmup + args.http_duration + 90))
                except RuntimeError as exc:
                    log(f"http {label} failed: {exc}")
            if not runs:
                rows.append(f"| {mode} | {args.users} | {shards} | {'on' if fsync else 'off'} | failed |")
                continue
            ranked = sorted(runs, key=lambda d: float(d["ops_per_s"]))
            spread = ", ".join(f"{d['ops_per_s']:,.0f}" for d in runs)
            rows.append(run_http.markdown_row(ranked[len(ranked) // 2]) + f" {spread} |")
    head = (
        f"`codeq serve` + the load generator on the same machine, {args.users} users, median of "
        f"{args.repeat} × {args.http_duration:g} s windows (`bench/run_http.py`).\n"
    )
    return head + "\n" + "\n".join(rows)


# --------------------------------------------------------------------------- report


def machine() -> list[str]:
    env = run_http.environment()
    versions = []
    for package in ("rocksdict", "uvloop", "msgspec", "uvicorn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {env['cpu']}, {env['cores']} cores; kernel {env['kernel']}",
        f"- Python {env['python']}; {', '.join(versions)}",
        f"- Load average at start: {load}",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated subset of steps")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; median reported")
    parser.add_argument("--engine-duration", type=float, default=10.0, help="engine window, s")
    parser.add_argument("--http-duration", type=float, default=10.0, help="HTTP window, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before each window, s")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="restart: pending tasks")
    parser.add_argument("--users", type=int, default=32, help="HTTP: virtual users")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 3 s windows, 100k tasks")
    parser.add_argument("--out", default=str(BENCH / "results-latest.md"), help="report file")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(args.only) - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    if args.quick:
        args.repeat, args.engine_duration, args.http_duration, args.tasks = 1, 3.0, 3.0, 100_000
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    sections = {
        "engine": ("Engine alone", engine_step),
        "restart": (f"Restart with {args.tasks:,} pending tasks", restart_step),
        "http": ("HTTP", http_step),
    }
    command = " ".join(["bench/run_all.py", *sys.argv[1:]])
    lines = ["# codeq benchmarks", "", *machine(), "", f"Command: `{command}`"]
    started = time.monotonic()
    failed = 0
    for step in STEPS:
        if step not in args.only:
            continue
        title, run = sections[step]
        log(f"{step} ...")
        step_started = time.monotonic()
        try:
            body = run(args)
        except RuntimeError as exc:
            failed += 1
            body = f"**failed**: {exc}"
        log(f"{step} done in {time.monotonic() - step_started:.0f} s")
        lines += ["", f"## {title}", "", body]
    lines += ["", f"Total run time: {(time.monotonic() - started) / 60:.1f} min."]
    report = "\n".join(lines) + "\n"
    Path(args.out).write_text(report)
    print(report)
    log(f"report written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
