"""Token providers and environment defaults: long-running clients whose tokens expire keep working."""

from __future__ import annotations

import base64
import json

import pytest

from codeq.client import AsyncProducer, AsyncWorker, Job, Unauthorized
from codeq.client._tokens import REFRESH_BEFORE_EXP_SECONDS, TokenSource
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import LiveServer


def unsigned_jwt(exp: float) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'exp': exp})}.sig"


async def test_a_worker_whose_token_was_refused_asks_its_provider_again(server: LiveServer) -> None:
    handed_out: list[str] = []

    def provider() -> str:  # the first token has "expired": the server refuses it
        handed_out.append("expired" if not handed_out else WORKER_TOKEN)
        return handed_out[-1]

    async with AsyncProducer(server.url, PRODUCER_TOKEN) as producer:
        task = await producer.create("render", {"n": 2})
        worker = AsyncWorker(server.url, provider, wait_seconds=0)

        @worker.handler("render")
        def render(job: Job) -> dict[str, int]:
            return {"n": job.payload["n"] * 2}

        await worker.run(burst=True, handle_signals=False)
        assert (await producer.result(task.id)).result == {"n": 4}
    assert handed_out == ["expired", WORKER_TOKEN]  # asked once more, then kept


async def test_an_async_provider_serves_a_producer_and_a_refusal_after_refresh_is_raised(
    server: LiveServer,
) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return PRODUCER_TOKEN if calls == 1 else "revoked"

    async with AsyncProducer(server.url, provider) as producer:
        created = await producer.create("render", {"n": 1})
        assert (await producer.get(created.id)).id == created.id
        assert calls == 1
    async with AsyncProducer(server.url, lambda: "revoked") as refused:
        with pytest.raises(Unauthorized):
            await refused.get(created.id)


async def test_a_jwt_is_replaced_shortly_before_its_exp() -> None:
    now = [1_000.0]
    issued: list[str] = []

    def provider() -> str:
        issued.append(unsigned_jwt(now[0] + 300))
        return issued[-1]

    tokens = TokenSource(provider, clock=lambda: now[0])
    first = await tokens.current()
    now[0] += 300 - REFRESH_BEFORE_EXP_SECONDS - 1
    assert await tokens.current() == first and len(issued) == 1
    now[0] += 1
    assert await tokens.current() == issued[1] != first


async def test_a_worker_takes_its_url_and_token_from_the_environment(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEQ_URL", server.url)
    monkeypatch.setenv("CODEQ_TOKEN", WORKER_TOKEN)
    worker = AsyncWorker(wait_seconds=0)
    assert (worker.base_url, worker.token) == (server.url, WORKER_TOKEN)
    monkeypatch.delenv("CODEQ_TOKEN")
    monkeypatch.delenv("CODEQ_WORKER_TOKEN", raising=False)
    tokenless = AsyncWorker(server.url)
    tokenless.register("render", lambda job: None)
    with pytest.raises(ValueError, match="no token"):
        await tokenless.run(burst=True, handle_signals=False)
