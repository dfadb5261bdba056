"""`codeq task complete|fail|abandon|heartbeat` via the real entry point; `--json` in the API's names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

CODEQ = str(Path(sys.executable).parent / "codeq")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("lease-cli") / "data")
    proc.start()
    yield proc
    proc.stop()


def codeq(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "CODEQ_BASE_URL": server.url,
        "CODEQ_PRODUCER_TOKEN": "dev-producer",
        "CODEQ_WORKER_TOKEN": "dev-worker",
    }
    return subprocess.run([CODEQ, *args], capture_output=True, text=True, timeout=60, env=environ)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def claimed(server: ServerProcess, command: str) -> dict[str, Any]:
    task_id = as_json(codeq(server, "task", "create", command, "--payload", '{"n_items": 1}', "--json"))["id"]
    task = as_json(codeq(server, "task", "claim", "-c", command, "--json"))
    assert task["id"] == task_id
    return task


def test_json_output_uses_the_api_field_names_and_leaves_payloads_alone(server: ServerProcess) -> None:
    task = claimed(server, "cli-names")
    assert task["leaseToken"] > 0 and task["maxAttempts"] == 5 and task["tenantId"] == "dev"
    assert "lease_token" not in task and task["payload"] == {"n_items": 1}


def test_complete_fail_abandon_and_heartbeat_a_claimed_task(server: ServerProcess) -> None:
    held = claimed(server, "cli-outcomes")
    lease = ("--lease-token", str(held["leaseToken"]))
    beat = as_json(
        codeq(server, "task", "heartbeat", held["id"], "--extend-seconds", "120", *lease, "--json")
    )
    assert beat == {"taskId": held["id"], "status": "IN_PROGRESS"}
    done = codeq(server, "task", "complete", held["id"], "--result", '{"ok": true}', *lease, "--json")
    assert as_json(done) == {"taskId": held["id"], "status": "COMPLETED"}
    assert as_json(codeq(server, "task", "result", held["id"], "--json"))["result"] == {"ok": True}

    failing = claimed(server, "cli-outcomes")
    failed = codeq(server, "task", "fail", failing["id"], "--error", "bad input", "--json")
    assert as_json(failed) == {"taskId": failing["id"], "status": "FAILED"}

    handed = claimed(server, "cli-outcomes")
    back = as_json(codeq(server, "task", "abandon", handed["id"], "--json"))
    assert back == {"taskId": handed["id"], "status": "PENDING"}
    again = as_json(codeq(server, "task", "get", handed["id"], "--json"))
    assert (again["status"], again["attempts"]) == ("PENDING", 0)


def test_reports_about_a_task_not_held_are_refused(server: ServerProcess) -> None:
    task_id = as_json(codeq(server, "task", "create", "cli-unheld", "--json"))["id"]
    done = codeq(server, "task", "complete", task_id)
    assert done.returncode == 1 and "error (" in done.stderr
