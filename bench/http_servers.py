#!/usr/bin/env python3
"""Compare HTTP servers for `codeq serve` (docs/adr/0006): server CPU per HTTP cycle and the
attacks of bench/http_attacks.py, with the same app, stores and settings.

    python bench/http_servers.py --runs 3 --duration 8 --warmup 2
    python bench/http_servers.py --servers codeq,uvicorn-httptools --runs 3 --no-attacks

Each server runs `codeq serve --dev` with its HTTP launch swapped (codeq.cli.serve's
`_serve_until_signalled`), so the app, the stores (fsync on) and the dev tokens are the
same. The load is `codeq bench --mode http`'s, run against each server in turn, the runs
interleaved; the report gives medians. Granian and Hypercorn are not project
dependencies: `pip install granian hypercorn` into the venv first.

For the attacks every server gets 4,096 descriptors (soft = hard) and, where it has the
knob, a 2 s head deadline, 2 s keep-alive and 64 KiB head limit (http_attacks.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_attacks  # sibling module (bench/ is not a package)

SERVERS = ("codeq", "uvicorn-httptools", "uvicorn-h11", "granian", "hypercorn")
ATTACK_DESCRIPTORS = 4096


# --------------------------------------------------------------------------- in the server process


async def _until_signal(app: Any) -> None:
    """Wait for SIGTERM/SIGINT, then answer long polls (as codeq serve does)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    app.node.waiters.close()


def _uvicorn_launch(http: str, attack: bool) -> Any:
    import uvicorn

    async def launch(server: Any, settings: Any, app: Any) -> None:
        extra = {"h11_max_incomplete_event_size": 65536} if http == "h11" else {}
        config = uvicorn.Config(
            app.asgi, host=settings.host, port=settings.port, loop="none", http=http, lifespan="off",
            access_log=False, log_level="warning", timeout_keep_alive=2 if attack else 5, **extra,
        )  # fmt: skip
        userver = uvicorn.Server(config)
        userver.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(userver.serve())
        await _until_signal(app)
        userver.should_exit = True
        await task

    return launch


def _granian_launch(attack: bool) -> Any:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    async def launch(server: Any, settings: Any, app: Any) -> None:
        h1 = HTTP1Settings(header_read_timeout=2000, max_buffer_size=65536) if attack else None
        gserver = Server(
            app.asgi, address=settings.host, port=settings.port, interface=Interfaces.ASGINL,
            http=HTTPModes.http1, websockets=False, log_enabled=False, backlog=2048, http1_settings=h1,
        )  # fmt: skip
        task = asyncio.create_task(gserver.serve())
        await _until_signal(app)
        gserver.stop()
        await task

    return launch


def _hypercorn_launch(attack: bool) -> Any:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    async def launch(server: Any, settings: Any, app: Any) -> None:
        config = Config()
        config.bind = [f"{settings.host}:{settings.port}"]
        config.accesslog = None
        config.backlog = 2048
        if attack:
            config.keep_alive_timeout = 2
            config.read_timeout = 2
            config.h11_max_incomplete_size = 65536
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app.asgi, config, shutdown_trigger=stop.wait, mode="asgi"))
        await _until_signal(app)
        stop.set()
        await task

    return launch


def serve_child(name: str, attack: bool, argv: list[str]) -> None:
    """Runs in the server process: `codeq serve` with the HTTP launch swapped for `name`."""
    import codeq.cli.serve as serve_module
    from codeq.cli.main import main as codeq_main

    if name == "uvicorn-httptools":
        serve_module._serve_until_signalled = _uvicorn_launch("httptools", attack)  # type: ignore[assignment]
    elif name == "uvicorn-h11":
        serve_module._serve_until_signalled = _uvicorn_launch("h11", attack)  # type: ignore[assignment]
    elif name == "granian":
        serve_module._serve_until_signalled = _granian_launch(attack)  # type: ignore[assignment]
    elif name == "hypercorn":
        serve_module._serve_until_signalled = _hypercorn_launch(attack)  # type: ignore[assignment]
    sys.argv = ["codeq", *argv]
    codeq_main()


# --------------------------------------------------------------------------- in the driver


@contextmanager
def spawned(name: str, attack: bool) -> Iterator[tuple[str, int, int]]:
    """A server for `name`; a start that loses a free port to another process is retried."""
    for attempt in range(3):
        try:
            context = _spawned(name, attack)
            address = context.__enter__()
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        try:
            yield address
        finally:
            context.__exit__(None, None, None)
        return


@contextmanager
def _spawned(name: str, attack: bool) -> Iterator[tuple[str, int, int]]:
    from codeq.cli.bench import _free_port  # the same free-port probe codeq bench uses

    data = tempfile.mkdtemp(prefix="codeq-httpcmp-")
    port = _free_port()
    argv = ["serve", "--dev", "--host", "127.0.0.1", "--port", str(port), "--data", data,
            "--producer-stream-addr", f"127.0.0.1:{_free_port()}",
            "--worker-stream-addr", f"127.0.0.1:{_free_port()}"]  # fmt: skip
    env = dict(os.environ, CODEQ_CONFIG_PATH="")
    if attack:
        env.update(
            HTTP_HEAD_TIMEOUT_SECONDS="2", HTTP_IDLE_TIMEOUT_SECONDS="2", HTTP_BODY_TIMEOUT_SECONDS="2"
        )

    def limit_descriptors() -> None:
        if attack:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ATTACK_DESCRIPTORS, ATTACK_DESCRIPTORS))

    command = [sys.executable, __file__, "--child", name, *(["--attack"] if attack else []), "--", *argv]
    log = open(os.path.join(data, "server.log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=limit_descriptors
    )
    try:
        _wait_ready(port, proc, data)
        yield "127.0.0.1", port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], data: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(Path(data, "server.log").read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server not ready in 60 s")


def measure(name: str, duration: float, warmup: float) -> dict[str, Any]:
    from codeq.cli.bench import Target, plan_for, report, run_load

    knobs: dict[str, object] = {
        "producer_token": "dev-producer",
        "worker_token": "dev-worker",
        "producers": 32,
        "concurrency": 64,
        "batch": 1,
        "payload_bytes": 16,
        "count": 0,
        "duration": duration,
        "warmup": warmup,
    }  # codeq bench defaults
    with spawned(name, attack=False) as (host, port, pid):
        url = f"http://{host}:{port}"
        plan = plan_for("http", Target(url, "", "", pid), **knobs)
        result = report(plan, run_load(plan, show_progress=False), None)
    return {"cycles_per_s": result["cycles_per_s"], "server_cpu_us": result["server_cpu_us_per_cycle"]}


def attack(name: str) -> dict[str, bool]:
    with spawned(name, attack=True) as (host, port, _):
        return http_attacks.run_all(host, port)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-attacks", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--attack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_child(args.child, args.attack, args.argv)
        return
    names = args.servers.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    loads = []
    for _ in range(args.runs):  # interleaved: a busy moment on the machine hits every server
        for name in names:
            runs[name].append(measure(name, args.duration, args.warmup))
            loads.append(os.getloadavg()[0])
            print(name, runs[name][-1], f"load {loads[-1]:.2f}", file=sys.stderr, flush=True)
    attacks = {} if args.no_attacks else {name: attack(name) for name in names}
    rows = [_row(name, runs[name], attacks.get(name)) for name in names]
    print(json.dumps({"load_average_1m": [round(x, 2) for x in loads], "servers": rows}, indent=1))


def _row(name: str, runs: list[dict[str, Any]], attacks: dict[str, bool] | None) -> dict[str, Any]:
    return {
        "server": name,
        "cycles_per_s_median": statistics.median(r["cycles_per_s"] for r in runs) if runs else None,
        "server_cpu_us_per_cycle_median": statistics.median(r["server_cpu_us"] for r in runs)
        if runs
        else None,
        "runs": runs,
        "attacks": attacks,
    }


if __name__ == "__main__":
    main()
