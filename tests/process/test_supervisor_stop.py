"""A node's stop is bounded: shard processes still running after the supervisor's deadline are
killed and the node exits non-zero (ADR 0009)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

# A supervisor whose shard processes ignore SIGTERM, as a shard process stuck in its stop would.
SCRIPT = """
import subprocess, sys
from codeq.app.supervisor import Supervisor

STUCK = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "os.write(1, b'up\\\\n'); time.sleep(60)"
)


class Stuck(Supervisor):
    def _start(self, number):
        child = subprocess.Popen([sys.executable, "-c", STUCK], stdin=subprocess.PIPE, process_group=0)
        self.children[child.pid] = (number, child)


sys.exit(Stuck(2, [], None, stop_seconds=0.5).run())
"""


def test_shard_processes_that_outlive_the_stop_deadline_are_killed_and_the_node_exits_1() -> None:
    command = [sys.executable, "-c", SCRIPT]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as node:
        try:
            assert node.stdout is not None and node.stderr is not None
            assert [node.stdout.readline() for _ in range(2)] == ["up\n", "up\n"]
            node.send_signal(signal.SIGTERM)
            assert node.wait(30) == 1
            said = node.stderr.read()
            assert "shard process(es) 0, 1 still running 0.5s after the stop began; killing them" in said
        finally:
            node.kill()


# A supervisor whose child calls die_with_supervisor() and then never reads its stdin pipe, as a
# shard process whose event loop stalls: it prints the child's pid and waits to be killed.
ORPHAN = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "from codeq.app.supervisor import die_with_supervisor; import time; "
    "die_with_supervisor(); print('up', flush=True); time.sleep(60)"
)], stdin=subprocess.PIPE, process_group=0)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_stalled_shard_process_dies_with_its_supervisor() -> None:
    with subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        try:
            assert parent.stdout.readline() == "up\n"
            parent.kill()
            parent.wait(10)
            deadline = time.monotonic() + 10
            while _state(child) not in ("gone", "Z") and time.monotonic() < deadline:
                time.sleep(0.02)  # waiting for the kernel to kill a real process
            assert _state(child) in ("gone", "Z"), "the child outlived its supervisor"
        finally:
            if _state(child) not in ("gone", "Z"):
                os.kill(child, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
