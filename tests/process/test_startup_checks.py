"""`codeq serve` outside --dev: what it refuses to start with, and what it warns about by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

pytestmark = pytest.mark.process

STATIC_AUTH = {
    "PRODUCER_AUTH_PROVIDER": "static",
    "PRODUCER_AUTH_CONFIG": json.dumps("p-token"),
    "WORKER_AUTH_PROVIDER": "static",
    "WORKER_AUTH_CONFIG": json.dumps({"token": "w-token", "scopes": ["codeq:claim"], "eventTypes": ["*"]}),
}
RAFT = {
    "RAFT_ENABLED": "true",
    "RAFT_SELF_ID": "a",
    "RAFT_PEERS": "a=127.0.0.1:7000,b=127.0.0.1:7100,c=127.0.0.1:7200",
    "RAFT_PEER_HTTP_ADDRS": "a=http://127.0.0.1:8081,b=http://127.0.0.1:8082,c=http://127.0.0.1:8083",
    "RAFT_SECRET": "s3cret",
}


def serve_command(tmp_path: Path, port: int) -> list[str]:
    data = str(tmp_path / "data")
    return [
        sys.executable,
        "-m",
        "codeq.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data",
        data,
    ]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **extra}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # The default env is dev, which used to allow static tokens silently.
        (STATIC_AUTH, "allowStaticTokens"),
        (
            {**STATIC_AUTH, "ALLOW_STATIC_TOKENS": "true", "REQUIRE_SIGNED_WEBHOOKS": "true"},
            "requireSignedWebhooks",
        ),
        (
            {**STATIC_AUTH, "ALLOW_STATIC_TOKENS": "true", **RAFT, "RAFT_BIND_ADDR": "127.0.0.1:7001"},
            "raft.bindAddr",
        ),
    ],
    ids=["static-tokens-without-opt-in", "unsigned-webhooks-refused", "raft-bind-elsewhere"],
)
def test_refuses_to_start(tmp_path: Path, env: dict[str, str], named: str) -> None:
    result = subprocess.run(
        serve_command(tmp_path, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(tmp_path, **env),
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_warns_by_name_about_what_it_does_not_use(tmp_path: Path) -> None:
    config = tmp_path / "codeq.yml"
    config.write_text("redisAddr: x\nwebhookSecret: typo\n")
    env = clean_env(
        tmp_path,
        **STATIC_AUTH,
        ALLOW_STATIC_TOKENS="true",
        CODEQ_CONFIG_PATH=str(config),
        CODEQ_TRACNG="on",  # a typo of an unknown CODEQ_* name
        LOCAL_ARTIFACTS_DIR="/tmp/artifacts",  # the reference's, not read here
        CODEQ_BASE_URL="http://127.0.0.1:1",  # the CLI's: no warning
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(serve_command(tmp_path, port), stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(proc, port, log)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert "CODEQ_TRACNG" in text and "LOCAL_ARTIFACTS_DIR" in text
    assert "redisAddr" in text and "webhookSecret" in text
    assert "webhookHmacSecret is not set" in text
    assert "static token" in text
    assert "CODEQ_BASE_URL" not in text


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"codeq serve exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling for the process to come up, not waiting on queue behaviour
    raise AssertionError(f"codeq serve did not become ready: {log.read_text()}")
