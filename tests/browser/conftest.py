"""Playwright driving Debian's chromium against a real `codeq serve --dev` process."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from codeq.transport.http import openapi
from tests.support.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"  # gitignored: the run leaves one picture per page here
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and no traffic of its own (updates, sync, QUIC): the tests must see only loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}
API_PATHS = set(openapi.document()["paths"])


def needs_route(path: str) -> pytest.MarkDecorator:
    """Skip a test whose page needs an API route this build does not have (its /openapi.json)."""
    return pytest.mark.skipif(path not in API_PATHS, reason=f"{path} is not in /openapi.json yet")


class Api:
    """The public HTTP API of the server under test, to set up what the pages should show."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=f"{url}/v1/codeq", timeout=10)
        self._names = itertools.count(1)

    def command(self, stem: str) -> str:
        """A command no other test uses, so each test's queue starts empty."""
        return f"{stem}-{next(self._names)}"

    def create(self, command: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
        body = {"command": command, "payload": payload if payload is not None else {"n": 1}, **fields}
        response = self.client.post("/tasks", json=body, headers=PRODUCER)
        assert response.status_code in (200, 202), response.text
        task: dict[str, Any] = response.json()
        return task

    def claim(self, command: str) -> dict[str, Any]:
        response = self.client.post("/tasks/claim", json={"commands": [command]}, headers=WORKER)
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task

    def dead_letter(self, command: str, payload: Any = None) -> dict[str, Any]:
        """A task with one attempt, claimed and nacked: straight to the dead-letter queue."""
        task = self.create(command, payload, maxAttempts=1)
        assert self.claim(command)["id"] == task["id"]
        response = self.client.post(f"/tasks/{task['id']}/nack", json={"reason": "boom"}, headers=WORKER)
        assert response.json()["status"] == "dlq", response.text
        return task

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.client.get(f"/tasks/{task_id}", headers=PRODUCER)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


class Console:
    """One browser page on the console, collecting every console error and uncaught exception."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def sign_in(self, token: str = "dev-producer") -> None:
        self.page.goto(f"{self.url}/console")
        self.page.get_by_label("Token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()

    def open(self, hash_path: str) -> None:
        self.page.goto(f"{self.url}/console#{hash_path}")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = ["--shards", "2", "--producer-stream-addr", f"127.0.0.1:{free_port()}"]
    args += ["--worker-stream-addr", f"127.0.0.1:{free_port()}"]
    proc = ServerProcess(tmp_path_factory.mktemp("console") / "data", args=args)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs it (make browser) as root")
        pytest.skip("chromium is not installed (make browser, as root)")
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture
def console(browser: Browser, server: ServerProcess) -> Iterator[Console]:
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(10_000)
    try:
        yield Console(context.new_page(), server.url)
    finally:
        context.close()
