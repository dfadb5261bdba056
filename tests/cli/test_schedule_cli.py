"""`codeq schedule put|get|list|delete` and the SDK's `Admin.schedule_*` against a real server."""

from __future__ import annotations

import pytest

from tests.cli.test_operator_cli import as_json, codeq, server  # noqa: F401 — the fixture
from tests.support.server import ServerProcess

pytestmark = pytest.mark.process


def test_schedule_put_get_list_delete(server: ServerProcess) -> None:  # noqa: F811
    cron = ("--cron", "0 3 * * *", "--timezone", "Europe/Paris")
    put = as_json(codeq(server, "schedule", "put", "nightly", "-c", "report", *cron,
                        "--payload", '{"kind": "daily"}', "--json"))  # fmt: skip
    assert put["name"] == "nightly" and put["cron"] == "0 3 * * *" and put["payload"] == {"kind": "daily"}
    assert put["timezone"] == "Europe/Paris" and put["version"] == 1
    again = codeq(server, "schedule", "put", "nightly", "-c", "report", "--every-seconds", "3600", "--json")
    assert as_json(again)["version"] == 2
    shown = codeq(server, "schedule", "get", "nightly")
    assert shown.returncode == 0 and "report" in shown.stdout and "3600" in shown.stdout
    listed = codeq(server, "schedule", "list")
    assert listed.returncode == 0 and "every 3600s" in listed.stdout
    both = codeq(server, "schedule", "put", "nightly", "-c", "report")
    assert both.returncode == 2 and "--cron" in both.stderr
    invalid = codeq(server, "schedule", "put", "nightly", "-c", "report", "--cron", "99 * * * *")
    assert invalid.returncode == 1 and "error (422)" in invalid.stderr
    gone = as_json(codeq(server, "schedule", "delete", "nightly", "--json"))
    assert gone == {"schedule": "nightly", "deleted": True}
    missing = codeq(server, "schedule", "get", "nightly")
    assert missing.returncode == 1 and "error (404)" in missing.stderr


def test_blocking_admin_sdk_schedules(server: ServerProcess) -> None:  # noqa: F811
    from codeq.client import Admin

    with Admin(server.url, "dev-producer") as admin:
        body = {"command": "sdk-report", "payload": [1], "everySeconds": 60, "catchUp": "once"}
        stored = admin.schedule_put("sdk", body)
        assert stored["catchUp"] == "once" and stored["everySeconds"] == 60
        assert admin.schedule_get("sdk") == stored
        assert [s["name"] for s in admin.schedule_list()] == ["sdk"]
        admin.schedule_delete("sdk")
        assert admin.schedule_list() == []
