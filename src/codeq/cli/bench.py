"""`codeq bench`: full cycles per second through the SDK, against a server it spawns or a URL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from codeq.cli.bench_fleet import ServerSpend
from codeq.cli.bench_load import Load, LoadPlan, Tally, percentile, run_async
from codeq.config.tree import StoreSettings
from codeq.h1 import H1Error, fetch

MODES = ("http", "http-batch", "grpc", "grpc-batch")


@dataclass(frozen=True, slots=True)
class Target:
    http_url: str
    producer_addr: str
    worker_addr: str
    server_pid: int = 0  # when the server was spawned here


@dataclass(frozen=True, slots=True)
class SpawnOptions:
    fsync: bool = True
    shards: int = 1
    shard_processes: bool | None = None  # a process per shard (ADR 0009); None: the default


def _runs_shard_processes(spawn: SpawnOptions) -> bool:
    """Whether the spawned server runs a process per shard, by the server's own rule."""
    return StoreSettings(num_shards=spawn.shards, shard_processes=spawn.shard_processes).runs_shard_processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def spawned_server(options: SpawnOptions) -> Iterator[Target]:
    """A private `codeq serve --dev` on loopback with a temporary data directory."""
    data = tempfile.mkdtemp(prefix="codeq-bench-")
    http, producer, worker = _free_port(), _free_port(), _free_port()
    command = [
        sys.executable, "-m", "codeq.cli.main", "serve", "--dev", "--host", "127.0.0.1", "--port", str(http),
        "--data", data, "--shards", str(options.shards),
        "--producer-stream-addr", f"127.0.0.1:{producer}", "--worker-stream-addr", f"127.0.0.1:{worker}",
    ]  # fmt: skip
    if not options.fsync:
        command.append("--no-fsync")
    if options.shard_processes is not None:
        command.append("--shard-processes" if options.shard_processes else "--no-shard-processes")
    log = open(os.path.join(data, "server.log"), "wb")  # noqa: SIM115 - closed in finally
    # bench/interleaved_trees.py --client-tree: the server's code from another tree than the load's.
    server_path = os.environ.get("CODEQ_BENCH_SERVER_PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": server_path} if server_path else None
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        try:
            _wait_ready(f"http://127.0.0.1:{http}", proc)
        except (RuntimeError, TimeoutError):
            log.flush()
            with open(os.path.join(data, "server.log"), errors="replace") as lines:
                print(lines.read()[-4000:], file=sys.stderr)  # why it did not start
            raise
        yield Target(f"http://127.0.0.1:{http}", f"127.0.0.1:{producer}", f"127.0.0.1:{worker}", proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"codeq serve exited with status {proc.returncode}")
        try:
            if fetch(f"{url}/readyz", timeout=1).status == 200:
                return
        except H1Error:
            pass
        time.sleep(0.1)
    raise TimeoutError("codeq serve did not become ready within 60 s")


def plan_for(mode: str, target: Target, **knobs: object) -> LoadPlan:
    grpc = mode.startswith("grpc")
    return LoadPlan(
        mode=mode,
        producer_url=f"grpc://{target.producer_addr}" if grpc else target.http_url,
        worker_url=f"grpc://{target.worker_addr}" if grpc else target.http_url,
        http_url=target.http_url,
        server_pid=target.server_pid,
        **knobs,  # type: ignore[arg-type]
    )


def run_load(plan: LoadPlan, *, show_progress: bool) -> Tally:
    console = Console(stderr=True)
    if not show_progress:
        return run_async(Load(plan).run())
    with Live(console=console, refresh_per_second=4, transient=True) as live:

        def progress(tally: Tally) -> None:
            elapsed = max(time.perf_counter() - tally.started, 1e-9)
            goal = (
                f"{tally.cycles:,}/{plan.count:,} cycles"
                if plan.count
                else f"{elapsed:.0f}/{plan.duration:g} s"
            )
            live.update(f"[bold]{plan.mode}[/]  {goal}  {tally.cycles / elapsed:,.0f} cycles/s")

        return run_async(Load(plan, progress).run())


def report(
    plan: LoadPlan,
    tally: Tally,
    spawn: SpawnOptions | None,
    spend: ServerSpend | None = None,
    clients: int = 1,
) -> dict[str, object]:
    window = max(tally.elapsed, 1e-9)
    spend = spend or ServerSpend()
    return {
        "mode": plan.mode,
        "clients": clients,
        "shards": spawn.shards if spawn else None,
        "shard_processes": _runs_shard_processes(spawn) if spawn else None,
        "fsync": spawn.fsync if spawn else None,
        "producers": plan.producers,
        "concurrency": plan.concurrency,
        "batch": plan.batch,
        "payload_bytes": plan.payload_bytes,
        "window_s": round(window, 2),
        "cycles": tally.cycles,
        "cycles_per_s": round(tally.cycles / window, 1),
        "creates_per_s": round(tally.created / window, 1),
        "claims_per_s": round(tally.claimed / window, 1),
        "errors": tally.errors,
        "create_ms": {f"p{p}": round(percentile(tally.create_ms, p), 2) for p in (50, 95, 99)},
        "create_to_result_ms": {f"p{p}": round(percentile(tally.cycle_ms, p), 2) for p in (50, 95, 99)},
        # CPU per acknowledged cycle: what bounds a run when both processes share the cores.
        "client_cpu_us_per_cycle": _per_cycle(tally.client_cpu_s, tally.cycles),
        "server_cpu_us_per_cycle": _per_cycle(tally.server_cpu_s, tally.cycles),
        "server_cpu_us_per_cycle_by_process": {
            name: _per_cycle(seconds, tally.cycles) for name, seconds in spend.cpu_by_process.items()
        },
        # Commands one shard process sent to another, of all the shard processes submitted.
        "forwarded_fraction": _fraction(spend.forwarded, spend.commands),
        # How the kernel spread the load's connections over the server's processes.
        "connections_by_process": spend.connections,
    }


def _fraction(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 4) if part is not None and whole else None


def _per_cycle(cpu_seconds: float | None, cycles: int) -> float | None:
    if cpu_seconds is None or not cycles:
        return None
    return round(cpu_seconds / cycles * 1e6, 1)


def print_report(result: dict[str, object]) -> None:
    table = Table(title=f"codeq bench: {result['mode']}")
    for column in (
        "cycles/s",
        "creates/s",
        "claims/s",
        "create p50/p95/p99 ms",
        "create→result p50/p95/p99 ms",
    ):
        table.add_column(column, justify="right")
    create, cycle = result["create_ms"], result["create_to_result_ms"]
    assert isinstance(create, dict) and isinstance(cycle, dict)
    table.add_row(
        f"{result['cycles_per_s']:,}", f"{result['creates_per_s']:,}", f"{result['claims_per_s']:,}",
        " / ".join(str(create[k]) for k in ("p50", "p95", "p99")),
        " / ".join(str(cycle[k]) for k in ("p50", "p95", "p99")),
    )  # fmt: skip
    Console().print(table)
    shards = (
        f"shards {result['shards']}, fsync {'on' if result['fsync'] else 'off'}, " if result["shards"] else ""
    )
    Console().print(
        f"{shards}{result['cycles']:,} acknowledged cycles in {result['window_s']} s, "
        f"{result['producers']} producers, concurrency {result['concurrency']}, batch {result['batch']}, "
        f"{result['errors']} errors"
    )
    if result["server_cpu_us_per_cycle"] is not None:
        Console().print(
            f"CPU per cycle: server {result['server_cpu_us_per_cycle']} µs "
            f"{result['server_cpu_us_per_cycle_by_process']}, client {result['client_cpu_us_per_cycle']} µs"
        )
    if result["forwarded_fraction"] is not None:
        Console().print(f"forwarded between shard processes: {result['forwarded_fraction']:.1%} of commands")


def emit(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        print_report(result)
