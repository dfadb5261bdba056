"""The README's static-token example, run as written: a server outside --dev, a create and a worker."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import free_port

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
INTRO = "A server with two static tokens"


def readme_commands() -> list[list[str]]:
    """The shell block after INTRO, one argv per line (the README's own words, parsed by shlex)."""
    text = (REPO / "README.md").read_text()
    block = text.split(INTRO, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.strip().splitlines()]


def test_the_static_token_example_works_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEQ_", "PRODUCER_", "WORKER_"))}
    env["CODEQ_CONFIG_PATH"] = ""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env["CODEQ_BASE_URL"] = env["CODEQ_URL"] = url  # the example's localhost:8080, moved to a free port
    commands = readme_commands()
    exports = [c for c in commands if c[0] == "export"]
    for _, assignment in exports:
        name, _, value = assignment.partition("=")
        env[name] = value
    serve, create, work = commands[len(exports) :]
    assert serve[:4] == ["codeq", "serve", "--data", "./data"] and serve[-1] == "&"
    codeq = [sys.executable, "-m", "codeq.cli.entry"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*codeq, *serve[1:-1], "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_ready(url, server, log)
        made = subprocess.run(
            [*codeq, *create[1:], "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        worker_env = dict(env, **dict(a.split("=", 1) for a in work if "=" in a and not a.startswith("-")))
        argv = [a for a in work if "=" not in a or a.startswith("-")]
        ran = subprocess.run(
            [*codeq, *argv[1:]], cwd=REPO, env=worker_env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, ran.stderr
        assert "completed=1" in ran.stderr
    finally:
        server.terminate()
        server.wait(20)


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import time

    import httpx

    for _ in range(600):
        if server.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling for the process to come up
    raise AssertionError("server never became ready")
