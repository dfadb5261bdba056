"""A callback still owed when the server is killed with SIGKILL is delivered after restart."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.receiver import Receiver
from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}
ENV = {
    "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "WEBHOOK_HMAC_SECRET": "secret",
    "RESULT_WEBHOOK_BASE_BACKOFF_SECONDS": "1",
    "RESULT_WEBHOOK_MAX_ATTEMPTS": "50",
}


def test_sigkill_with_a_pending_callback_delivers_it_after_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env=ENV)
    with Receiver(default=500) as receiver:
        try:
            server.start()
            base = server.url + "/v1/codeq"
            create = {"command": "render", "payload": {"n": 1}, "webhook": receiver.url + "/done"}
            task_id = httpx.post(f"{base}/tasks", json=create, headers=PRODUCER).json()["id"]
            assert httpx.post(f"{base}/tasks/claim", json={}, headers=WORKER).json()["id"] == task_id
            result = {"status": "COMPLETED", "result": {"ok": True}}
            done = httpx.post(f"{base}/tasks/{task_id}/result", json=result, headers=WORKER)
            assert done.status_code == 200
            receiver.wait_until(lambda: len(receiver.received) >= 1)  # attempted, failed: still owed
            server.kill()
            receiver.default = 200
            server.start()
            receiver.wait_until(lambda: len(receiver.answered(200)) == 1)
            delivered = receiver.answered(200)[0]
            assert json.loads(delivered.body)["taskId"] == task_id
            assert delivered.path == "/done"
        finally:
            server.stop()
