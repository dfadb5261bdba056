"""Regenerate docs/img/console-queues.png: a real server with some traffic, the Queues page.

Run from the repository root: `PYTHONPATH=. .venv/bin/python docs/img/console_screenshot.py`
(needs chromium: `make browser`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, WORKER, Api
from tests.support.server import ServerProcess, free_port

OUT = Path(__file__).with_name("console-queues.png")
QUEUES = {"send-email": 40, "render-pdf": 12, "resize-image": 25, "sync-crm": 6}


def traffic(api: Api, rounds: int) -> None:
    """Each round: a few new tasks per queue, some claimed, most of those completed, one nacked."""
    for command, size in QUEUES.items():
        for n in range(size // 4 + rounds % 3):
            api.create(command, {"n": n}, delaySeconds=600 if n % 7 == 6 else None)
        for n in range(size // 5):
            task = api.client.post("/tasks/claim", json={"commands": [command]}, headers=WORKER).json()
            if n % 4 == 3:
                continue  # stays in progress
            status = "FAILED" if n % 9 == 8 else "COMPLETED"
            body = {"status": status, "result": {"ok": status == "COMPLETED"}, "error": "bad input"}
            api.client.post(f"/tasks/{task['id']}/result", json=body, headers=WORKER)
    if rounds % 4 == 0:
        api.dead_letter("import-csv", {"file": f"batch-{rounds}.csv"})


def main() -> None:
    data = Path(tempfile.mkdtemp()) / "data"
    args = ["--producer-stream-addr", f"127.0.0.1:{free_port()}"]
    server = ServerProcess(data, args=[*args, "--worker-stream-addr", f"127.0.0.1:{free_port()}"])
    server.start()
    try:
        api = Api(server.url)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 300})
            page.goto(f"{server.url}/console")
            page.get_by_label("Token").fill("dev-producer")
            page.get_by_role("button", name="Sign in").click()
            for rounds in range(12):
                traffic(api, rounds)
                time.sleep(2)  # one console refresh per round, so the sparklines have a history
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
