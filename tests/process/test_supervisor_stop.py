"""A node's stop is bounded: shard processes still running after the supervisor's deadline are
killed and the node exits non-zero (ADR 0009)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process

# A supervisor whose shard processes ignore SIGTERM, as a shard process stuck in its stop would.
SCRIPT = """
import subprocess, sys
from codeq.app.supervisor import Supervisor

STUCK = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
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
