"""An in-process codeq (memory store, fake clock) behind httpx's ASGI transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from codeq.app import App
from codeq.config import load_settings
from codeq.core.clock import FakeClock

PRODUCER = {"Authorization": "Bearer dev-producer"}
WORKER = {"Authorization": "Bearer dev-worker"}
OTHER_PRODUCER = {"Authorization": "Bearer globex-producer"}
OTHER_WORKER = {"Authorization": "Bearer globex-worker"}
PLAIN_PRODUCER = {"Authorization": "Bearer acme-user"}
NARROW_WORKER = {"Authorization": "Bearer render-worker"}

WORKER_SCOPES = [
    "codeq:claim",
    "codeq:heartbeat",
    "codeq:abandon",
    "codeq:nack",
    "codeq:result",
    "codeq:subscribe",
]

# Extra tokens beside the dev ones: another tenant, a non-admin producer, a narrow worker.
PRODUCER_AUTH = {
    "providers": [
        {
            "type": "static",
            "config": {"token": "globex-producer", "subject": "globex", "raw": {"role": "ADMIN"}},
        },
        {"type": "static", "config": {"token": "acme-user", "subject": "acme-user", "raw": {"tid": "dev"}}},
    ]
}
WORKER_AUTH = {
    "providers": [
        {
            "type": "static",
            "config": {
                "token": "globex-worker",
                "subject": "globex",
                "scopes": WORKER_SCOPES,
                "eventTypes": ["*"],
            },
        },
        {
            "type": "static",
            "config": {
                "token": "render-worker",
                "subject": "render-worker",
                "scopes": ["codeq:claim"],
                "eventTypes": ["render"],
                "raw": {"tid": "dev"},
            },
        },
    ]
}


class Api:
    def __init__(self, app: App, client: httpx.AsyncClient, clock: FakeClock) -> None:
        self.app = app
        self.client = client
        self.clock = clock

    async def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        if body is not None and "content" not in kw:
            kw["content"] = json.dumps(body)
        return await self.client.post(f"/v1/codeq{path}", headers=headers or PRODUCER, **kw)

    async def get(self, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return await self.client.get(f"/v1/codeq{path}", headers=headers or PRODUCER, **kw)

    async def create(self, command: str = "render", payload: Any = None, **fields: Any) -> dict[str, Any]:
        body = {"command": command, "payload": {"n": 1} if payload is None else payload, **fields}
        response = await self.post("/tasks", body)
        assert response.status_code in (200, 202), response.text
        result: dict[str, Any] = response.json()
        return result

    async def claim(self, headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
        return await self.post("/tasks/claim", fields, headers or WORKER)


def make_settings(**overrides: Any) -> Any:
    env = {
        "PRODUCER_AUTH_PROVIDER": "multi",
        "PRODUCER_AUTH_CONFIG": json.dumps(PRODUCER_AUTH),
        "WORKER_AUTH_PROVIDER": "multi",
        "WORKER_AUTH_CONFIG": json.dumps(WORKER_AUTH),
        "BACKOFF_POLICY": "fixed",
        "BACKOFF_BASE_SECONDS": "5",
    }
    return load_settings(environ=env, overrides={"provider": "memory", "dev": True, **overrides})


@asynccontextmanager
async def running(settings: Any, clock: FakeClock | None = None) -> AsyncIterator[Api]:
    """An in-process node for `settings` on a fake clock (a fresh one unless given), stopped on
    the way out."""
    clock = clock or FakeClock()
    app = App(settings, clock=clock)
    await app.start()
    transport = httpx.ASGITransport(app=app.asgi)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://codeq.test") as client:
            yield Api(app, client, clock)
    finally:
        await app.stop()


@pytest.fixture(params=[1, 4], ids=["1-shard", "4-shards"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    """Every API test runs on one store and on four shards (numShards)."""
    async with running(make_settings(num_shards=request.param)) as node:
        yield node
