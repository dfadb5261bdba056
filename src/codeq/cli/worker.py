"""`codeq worker APP`: run the handlers registered on an application's Worker, in one or more processes.

It needs only the SDK (argparse, not Typer), so `codeq worker` works on the base install.
Exit codes follow the other remote commands: 0 stopped; 1 the server refused the worker's
token or scope; 2 bad usage (APP not found, bad flag); 3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
from types import FrameType, ModuleType

from codeq.client import AsyncWorker, CodeqError, Forbidden, Unauthorized, Worker, WorkerSettings

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
log = logging.getLogger("codeq.worker")


class AppError(Exception):
    """APP does not name a worker: the message says what was found instead."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codeq worker",
        description="Claim and run tasks with the handlers registered on the Worker named by APP.",
    )
    p.add_argument("app", metavar="APP", help="module:attribute naming a Worker, or a module holding one")
    p.add_argument("--url", help="HTTP base URL or grpc://host:port (default: the worker's, or $CODEQ_URL)")
    p.add_argument("--token", help="bearer token (default: the worker's, or $CODEQ_TOKEN)")
    p.add_argument("--concurrency", type=int, help="handlers running at once, per process")
    p.add_argument("--batch-size", type=int, help="tasks taken by one claim (1..256)")
    p.add_argument("--lease-seconds", type=int, help="lease length; renewed every half lease")
    p.add_argument(
        "--shutdown-timeout", type=float, help="seconds running handlers get after SIGTERM before hand-back"
    )
    p.add_argument("--burst", action="store_true", help="exit once a claim finds no task")
    p.add_argument("--processes", type=int, default=1, help="worker processes to run (default 1)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str]) -> int:
    """Run `codeq worker` with `argv` (the arguments after `worker`); returns the exit status."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT)
    if args.processes < 1:
        print("codeq worker: --processes must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.processes > 1:
        return supervise(args.processes, child_arguments(args))
    try:
        worker = load_worker(args.app)
        worker.configure(settings_from(args))
    except (AppError, ValueError) as exc:
        print(f"codeq worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_worker(worker, burst=args.burst)


def settings_from(args: argparse.Namespace) -> WorkerSettings:
    return WorkerSettings(
        base_url=args.url,
        token=args.token,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        lease_seconds=args.lease_seconds,
        shutdown_timeout=args.shutdown_timeout,
    )


def load_worker(spec: str) -> Worker | AsyncWorker:
    """Import `module[:attribute]` (the current directory first on the path, as `python -m` has it)."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.partition(".")[0] and exc.name != module_name:
            raise
        raise AppError(f"cannot import {module_name!r} (run from the directory that holds it)") from None
    if not attribute:
        return _the_worker_in(module)
    found: object = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise AppError(f"{module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not isinstance(found, Worker | AsyncWorker):
        raise AppError(f"{spec} is a {type(found).__name__}, not a codeq Worker")
    return found


def _the_worker_in(module: ModuleType) -> Worker | AsyncWorker:
    workers = {name: v for name, v in vars(module).items() if isinstance(v, Worker | AsyncWorker)}
    if len(workers) != 1:
        names = ", ".join(sorted(workers)) or "none"
        raise AppError(f"{module.__name__} must hold exactly one Worker (found: {names}); name it as APP")
    return next(iter(workers.values()))


def run_worker(worker: Worker | AsyncWorker, *, burst: bool) -> int:
    """Run until SIGTERM/SIGINT (or, with `burst`, an empty claim); the exit status."""
    if not worker.commands:
        print("codeq worker: the worker has no handler registered", file=sys.stderr)
        return EXIT_USAGE
    log.info("worker %s claiming %s from %s", worker.worker_id, ", ".join(worker.commands), worker.base_url)
    try:
        if isinstance(worker, AsyncWorker):
            asyncio.run(worker.run(burst=burst))
        else:
            worker.run(burst=burst)
    except (Unauthorized, Forbidden) as exc:
        print(f"codeq worker: the server refused the worker ({exc.status}): {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except CodeqError as exc:
        print(f"codeq worker: server unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ValueError as exc:
        print(f"codeq worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.info("worker %s stopped: %s", worker.worker_id, worker.stats)
    return 0


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The command line of one worker process: the same flags, one process each."""
    argv = [args.app, "--log-level", args.log_level]
    for flag, value in (
        ("--url", args.url),
        ("--token", args.token),
        ("--concurrency", args.concurrency),
        ("--batch-size", args.batch_size),
        ("--lease-seconds", args.lease_seconds),
        ("--shutdown-timeout", args.shutdown_timeout),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, "--burst"] if args.burst else argv


def supervise(count: int, argv: list[str]) -> int:
    """Start `count` worker processes, pass SIGTERM/SIGINT on to them, wait for every one.

    The children run in their own session so that a terminal's Ctrl-C reaches them once,
    through here, and not twice (a second signal makes a worker abort instead of hand back).
    """
    command = [sys.executable, "-m", "codeq.cli.worker", *argv]
    children = [subprocess.Popen(command, start_new_session=True) for _ in range(count)]
    log.info("started %d worker processes: %s", count, ", ".join(str(c.pid) for c in children))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [child.wait() for child in children]
    return next((code for code in codes if code != 0), 0)


def exit_now(code: int) -> None:
    """Leave without joining handler threads that outlived the shutdown: their tasks were handed back."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
