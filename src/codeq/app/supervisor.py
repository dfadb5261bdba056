"""`codeq serve` with a process per shard: start one process per shard, watch them, and stop
the whole node, non-zero, as soon as one of them stops on its own (ADR 0009).

The shard processes are started fresh (`python -m codeq.cli.main` with the same arguments and
environment, plus the shard each owns), never forked from a running event loop. Each reads
the supervisor's end of a pipe on its stdin: when the supervisor dies, even by SIGKILL, the
pipe closes and every shard process exits at once, so no orphan keeps a store locked.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from types import FrameType

from codeq.app.shard_process import PROCESS_ENV
from codeq.cluster.stream_table import create_table

log = logging.getLogger("codeq.app")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# How long a stopping shard process may take beyond the drain's grace (a Raft group hands its
# leadership over, stores write what is pending) before the supervisor kills it.
STOP_MARGIN_SECONDS = 30.0


class Supervisor:
    def __init__(
        self,
        num_shards: int,
        argv: list[str],
        stream_table: str | None = None,
        *,
        stop_seconds: float,
    ) -> None:
        self.num_shards = num_shards
        self.argv = argv  # the `codeq` arguments, from `serve` on
        self.stream_table = stream_table  # where the processes share their stream counts
        # A stop is bounded: shard processes still running this long after it began are killed
        # (what they acknowledged is durable already) and the node exits non-zero.
        self.stop_seconds = stop_seconds
        self.children: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}  # pid -> (shard, process)
        self.stopping = False
        self.killed = False

    def run(self) -> int:
        """Start every shard process and wait for all of them; the node's exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_deadline)
        if self.stream_table is not None:  # fresh: nothing a previous run left counts
            create_table(self.stream_table, self.num_shards)
        for number in range(self.num_shards):
            if self.stopping:
                break
            self._start(number)
        status = 0
        while self.children:
            pid, wait_status = os.wait()  # retried after a signal handler ran (PEP 475)
            found = self.children.pop(pid, None)
            if found is None:
                continue
            number, child = found
            code = os.waitstatus_to_exitcode(wait_status)
            child.returncode = code
            if child.stdin is not None:
                child.stdin.close()
            status = self._exited(number, code, status)
        return status

    def _exited(self, number: int, code: int, status: int) -> int:
        """The node's exit status once shard `number` exited with `code` (it was `status`)."""
        if not self.stopping:
            print(
                f"codeq: the process of shard {number} exited ({code}); stopping the node",
                file=sys.stderr,
                flush=True,
            )
            self._stop_all()
            return 1
        if self.killed:
            return 1
        if code not in (0, -signal.SIGTERM) and status == 0:
            # -SIGTERM: our own stop reached it before its handler was installed (starting)
            return code if code > 0 else 1
        return status

    def _start(self, number: int) -> None:
        command = [sys.executable, "-m", "codeq.cli.main", *self.argv]
        env = {**os.environ, PROCESS_ENV: str(number)}
        # Its own process group: a terminal's Ctrl-C reaches the supervisor alone, which passes
        # one SIGTERM on, so a shard process drains once instead of being cut short by a second.
        # Not its own session: with the kernel's autogroup scheduling each session is a group
        # that gets an equal share of the CPU, so N sessions would schedule the node as N
        # programs instead of the one it is (measured: 8-10 % more CPU per HTTP cycle, with
        # twice the commits at half the batch size, docs/benchmarks.md).
        child = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, process_group=0)
        self.children[child.pid] = (number, child)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # A second signal is passed on too: the shard processes then cut their drain short.
        self._stop_all()

    def _stop_all(self) -> None:
        if not self.stopping:
            signal.setitimer(signal.ITIMER_REAL, self.stop_seconds)
        self.stopping = True
        # os.kill, not Popen.send_signal: that would reap an exited child behind os.wait's back.
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):  # gone already: os.wait() reports it
                os.kill(pid, signal.SIGTERM)

    def _on_deadline(self, signum: int, frame: FrameType | None) -> None:
        if not self.children:
            return
        shards = ", ".join(str(number) for number in sorted(n for n, _ in self.children.values()))
        print(
            f"codeq: shard process(es) {shards} still running {self.stop_seconds:g}s after the stop "
            "began; killing them",
            file=sys.stderr,
            flush=True,
        )
        self.killed = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def reserve_port(host: str) -> tuple[socket.socket, int]:
    """HTTP port 0 (any free port) must be one port for every shard process: bind one here
    with SO_REUSEPORT, as the processes bind it, but never listen on it (so it takes no
    connection); while the supervisor holds it, nothing else can take the port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    held = socket.socket(family, kind, proto)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    held.bind(address)
    port: int = held.getsockname()[1]
    return held, port


def die_with_supervisor() -> None:
    """In a shard process on Linux: the kernel kills it (SIGKILL) the moment the supervisor dies,
    even if its event loop is stalled and would read the end of its stdin pipe only later (a
    stalled process of a dead node could still answer its Raft peers as their leader). A
    supervisor that died before this call is caught by that pipe, which is already closed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl to be had: the pipe still stops it
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable; the supervisor's pipe alone stops this process")


def owned_shard() -> int | None:
    """The shard this process owns when a supervisor started it, else None."""
    value = os.environ.get(PROCESS_ENV, "")
    return int(value) if value.isdigit() else None
