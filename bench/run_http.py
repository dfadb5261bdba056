#!/usr/bin/env python3
"""Start a private `codeq serve`, drive it with http_load.py, stop it, print a table row.

The server gets a fresh temp data dir and a free loopback port; it is stopped with
SIGTERM (SIGKILL after --stop-timeout) and the temp dir is removed, whatever happens.
Server RSS (VmRSS / VmHWM) is read from /proc at the end of the load, and server CPU
use over the measurement window from /proc/<pid>/stat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_load  # sibling module (bench/ is not a package)

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc helpers


def proc_status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- server process


class ServerProcess:
    """A `codeq serve` child bound to 127.0.0.1 with a throw-away data dir."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="codeq-bench-"))
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self._cpu_start: float | None = None
        self.window_cpu_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        data = self.tmp / "data"
        data.mkdir()
        cmd = [self.args.codeq, "serve", "--dev", "--host", HOST, "--port", str(self.port)]
        cmd += ["--data", str(data), "--shards", str(self.args.shards)]
        if self.args.no_fsync:
            cmd.append("--no-fsync")
        return cmd + list(self.args.server_arg)

    def start(self) -> None:
        pin = self.args.pin
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C is not its Ctrl-C; we stop it ourselves
                preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
            )
        self._wait_healthy(self.args.startup_timeout)

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {self.proc.returncode} during startup")
            if self._healthz():
                return
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy after {timeout:.0f}s")

    def _healthz(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def window_hook(self, phase: str) -> None:
        """Called by http_load at the start and end of the measurement window."""
        cpu = proc_cpu_seconds(self.proc.pid) if self.proc else None
        if phase == "start":
            self._cpu_start = cpu
        elif cpu is not None and self._cpu_start is not None:
            self.window_cpu_s = cpu - self._cpu_start

    def memory(self) -> dict[str, float | None]:
        pid = self.proc.pid if self.proc else -1
        rss, hwm = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
        return {
            "rss_mb": round(rss / 1024, 1) if rss is not None else None,
            "peak_rss_mb": round(hwm / 1024, 1) if hwm is not None else None,
        }

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)  # its own session: the server and its children only

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after --stop-timeout; always removes the temp dir."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(self.args.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.proc.wait(5)
            if self.proc is not None:
                self.exit_code = self.proc.returncode
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@contextlib.contextmanager
def running_server(args: argparse.Namespace) -> Iterator[ServerProcess]:
    server = ServerProcess(args)
    try:
        server.start()
        yield server
    except Exception:
        print(f"--- server log (tail) ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()


# --------------------------------------------------------------------------- reporting

COLUMNS = [
    "mode", "users", "shards", "fsync", "ops/s", "req/s",
    "create p50/p99 ms", "claim p50/p99 ms", "result p50/p99 ms", "cycle p50/p99 ms",
    "errors", "server CPU %", "client CPU %", "server RSS MB",
]  # fmt: skip


def _lat(doc: dict[str, Any], kind: str) -> str:
    lat = doc["latency_ms"].get(kind)
    return f"{lat['p50']:.2f} / {lat['p99']:.2f}" if lat else "–"


def markdown_header() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


def markdown_row(doc: dict[str, Any]) -> str:
    srv = doc["server"]
    errors = sum(doc["errors"].values())
    cells = [
        doc["mode"], doc["users"], srv["shards"], "on" if srv["fsync"] else "off",
        f"{doc['ops_per_s']:,.0f}", f"{doc['requests_per_s']:,.0f}",
        _lat(doc, "create"), _lat(doc, "claim"), _lat(doc, "result"), _lat(doc, "cycle"),
        f"{errors}" + (" (exhausted)" if doc.get("queue_exhausted") else ""),
        srv["cpu_pct"], doc["client_cpu_pct"], srv["rss_mb"],
    ]  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"


def environment() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def server_report(server: ServerProcess, args: argparse.Namespace, window_s: float) -> dict[str, Any]:
    cpu = server.window_cpu_s
    return {
        "shards": args.shards,
        "fsync": not args.no_fsync,
        "cpu_pct": round(100 * cpu / window_s, 1) if cpu is not None and window_s > 0 else None,
        **server.memory(),
    }


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    http_load.add_load_args(parser)
    default_codeq = Path(sys.executable).parent / "codeq"
    parser.add_argument("--codeq", default=str(default_codeq), help="codeq executable")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--no-fsync", action="store_true", help="start the server with --no-fsync")
    parser.add_argument("--server-arg", action="append", default=[], help="extra server argument")
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--stop-timeout", type=float, default=20.0, help="SIGTERM -> SIGKILL delay")
    parser.add_argument("--pin", action="store_true", help="pin server to CPU 0, load generator to CPU 1")
    parser.add_argument("--header", action="store_true", help="print the markdown table header first")
    args = parser.parse_args(argv)
    try:
        http_load.config_from_args(args, f"http://{HOST}:1")  # validate before starting anything
    except ValueError as exc:
        parser.error(str(exc))
    if args.shards < 1:
        parser.error("--shards must be >= 1")
    return args


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with running_server(args) as server:
        if args.pin and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        cfg = http_load.config_from_args(args, server.url)
        doc = http_load.run_async(http_load.run_load(cfg, hook=server.window_hook))
        doc["server"] = server_report(server, args, doc["window_s"])
    doc["server"]["exit_code"] = server.exit_code
    doc["env"] = environment()
    return doc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        doc = run(args)
    except (RuntimeError, OSError) as exc:
        print(f"run_http: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        print("run_http: interrupted; server stopped", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(doc))
        return 0
    if args.header:
        print(markdown_header())
    print(markdown_row(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
