"""First contact with `codeq serve`: a data directory or a port in use is one line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.process


def streams() -> list[str]:
    return [
        "--producer-stream-addr",
        f"127.0.0.1:{free_port()}",
        "--worker-stream-addr",
        f"127.0.0.1:{free_port()}",
    ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", args=streams())
    proc.start()
    yield proc
    proc.stop()


def second_serve(data: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "codeq.cli.main", "serve", "--dev", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data", str(data), *streams(), *extra]
    env = {**os.environ, "CODEQ_CONFIG_PATH": ""}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_a_second_server_on_a_data_directory_in_use_names_it_and_the_holder(server: ServerProcess) -> None:
    assert server.proc is not None
    done = second_serve(server.data, free_port())
    assert done.returncode == 2
    assert done.stderr == (
        f"codeq: data directory {server.data} is in use by another process (pid {server.proc.pid})\n"
    )


def test_an_http_port_in_use_is_one_line_before_any_banner(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = second_serve(tmp_path / "data", port)
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first == f"codeq: cannot serve HTTP on 127.0.0.1:{port}: address already in use"
    assert "Traceback" not in done.stderr and "codeq serving on" not in done.stderr
