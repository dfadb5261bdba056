"""`codeq serve` as a process: clean SIGTERM, long polls answered on shutdown, config errors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeq.wire.http import SHARD_PROCESS_HEADER
from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

WORKER = {"Authorization": "Bearer dev-worker"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data")
    yield proc
    proc.stop()


def test_sigterm_answers_long_polls_and_closes_cleanly(server: ServerProcess) -> None:
    server.start()
    answers: list[int] = []
    started = threading.Event()

    def long_poll() -> None:
        started.set()
        r = httpx.post(
            f"{server.url}/v1/codeq/tasks/claim", json={"waitSeconds": 30}, headers=WORKER, timeout=60
        )
        answers.append(r.status_code)

    poller = threading.Thread(target=long_poll)
    poller.start()
    started.wait(5)
    _wait_for_metric(server, "codeq_long_polls_waiting 1.0")
    # One process serves every shard: no response names a shard process (ADR 0009).
    assert SHARD_PROCESS_HEADER not in httpx.get(f"{server.url}/healthz", timeout=5).headers
    assert server.terminate(timeout=15) == 0
    poller.join(20)
    assert answers == [204]
    assert "stores closed" in server.log.read_text()
    server.start()  # the store reopens: it was closed cleanly and its lock released
    assert server.terminate() == 0


def _wait_for_metric(server: ServerProcess, line: str) -> None:
    for _ in range(200):
        if line in httpx.get(f"{server.url}/metrics", timeout=5).text:
            return
        time.sleep(0.02)  # polling the server's own report, not waiting on behaviour
    raise AssertionError(f"{line!r} never appeared")


def test_invalid_config_reports_every_problem(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "codeq.cli.main", "serve", "--port", "70000", "--shards", "0"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={"PATH": "", "HOME": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "port" in result.stderr and "num" in result.stderr.lower()
    assert "producer" in result.stderr  # no auth configured and no --dev


def test_help_describes_serve() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codeq.cli.main", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in ("--config", "--port", "--data", "--shards", "--dev", "--no-fsync"):
        assert flag in result.stdout
