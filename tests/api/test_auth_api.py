"""Authentication through the HTTP routes: JWT/JWKS tokens, the X-Role header, generic 401s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from codeq.config import load_settings
from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, Api, make_settings, running
from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, jwks_server

KEY = SigningKey.rsa("api-1")
WORKER_SCOPES = "codeq:claim codeq:heartbeat codeq:abandon codeq:nack codeq:result"


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server() as server:
        server.publish(KEY)
        yield server


@pytest.fixture
async def jwt_api(jwks: JwksServer) -> AsyncIterator[Api]:
    """A production-like node: env prod, JWKS for producers and workers, no static tokens."""
    config = json.dumps({"jwksUrl": jwks.url, "issuer": ISSUER, "audience": AUDIENCE})
    env = {
        "ENV": "production",
        "PRODUCER_AUTH_PROVIDER": "jwks",
        "PRODUCER_AUTH_CONFIG": config,
        "WORKER_AUTH_PROVIDER": "jwks",
        "WORKER_AUTH_CONFIG": config,
    }
    async with running(load_settings(environ=env, overrides={"provider": "memory"})) as node:
        yield node


def bearer(api: Api, **claims: Any) -> dict[str, str]:
    """A signed token; a producer's by default (`codeq:produce`), unless `scope` says otherwise."""
    now = api.clock.now_ms() // 1000
    body = {"sub": "svc-1", "tid": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300}
    body |= {"scope": "codeq:produce", **claims}
    return {"Authorization": f"Bearer {KEY.sign(body)}"}


async def test_jwt_producer_and_worker_round_trip(jwt_api: Api) -> None:
    producer = bearer(jwt_api)
    created = await jwt_api.post("/tasks", {"command": "render", "payload": {}}, producer)
    assert created.status_code == 202 and created.json()["tenantId"] == "acme"
    worker = bearer(jwt_api, sub="w-1", scope=WORKER_SCOPES, eventTypes=["render"])
    claimed = await jwt_api.post("/tasks/claim", {}, worker)
    assert claimed.status_code == 200 and claimed.json()["id"] == created.json()["id"]
    done = await jwt_api.post(
        f"/tasks/{claimed.json()['id']}/result", {"status": "COMPLETED", "result": {}}, worker
    )
    assert done.status_code == 200


async def test_jwt_refusals_are_generic_401s(jwt_api: Api) -> None:
    cases = [
        bearer(jwt_api, aud="elsewhere"),
        bearer(jwt_api, iss="https://evil"),
        bearer(jwt_api, exp=jwt_api.clock.now_ms() // 1000 - 120),
        {"Authorization": "Bearer dev-producer"},  # no static tokens in production
    ]
    for headers in cases:
        response = await jwt_api.post("/tasks", {"command": "render", "payload": {}}, headers)
        assert response.status_code == 401 and response.json() == {"error": "invalid token"}


async def test_a_token_lapses_while_the_node_runs(jwt_api: Api) -> None:
    headers = bearer(jwt_api)
    assert (await jwt_api.post("/tasks", {"command": "x", "payload": {}}, headers)).status_code == 202
    jwt_api.clock.advance(300 + 60)  # exp plus the default 60 s leeway
    assert (await jwt_api.post("/tasks", {"command": "x", "payload": {}}, headers)).status_code == 401


async def test_the_exp_leeway_is_applied_once(jwt_api: Api) -> None:
    """Past `exp` but inside the leeway, every check accepts; after it, the answer is generic."""
    producer = bearer(jwt_api)
    worker = bearer(jwt_api, sub="w-1", scope=WORKER_SCOPES, eventTypes=["*"])
    jwt_api.clock.advance(300 + 30)  # 30 s past exp, inside the default 60 s leeway
    created = await jwt_api.post("/tasks", {"command": "x", "payload": {}}, producer)
    assert created.status_code == 202, created.text
    assert (await jwt_api.post("/tasks/claim", {}, worker)).status_code == 200
    jwt_api.clock.advance(30)  # exp + leeway
    for headers, path in ((producer, "/tasks"), (worker, "/tasks/claim")):
        response = await jwt_api.post(path, {"command": "x", "payload": {}}, headers)
        assert response.status_code == 401 and response.json() == {"error": "invalid token"}


async def test_a_lapsed_static_token_is_refused_like_any_other() -> None:
    """A static token past its `expiresAt` gets the same 401 as a wrong one: no oracle."""
    brief = {"token": "brief", "subject": "b", "expiresAt": 1, "raw": {"tid": "t1"}}
    lapsing = {"type": "static", "config": brief}
    other = {"type": "static", "config": {"token": "other", "subject": "o"}}
    config = json.dumps({"providers": [lapsing, other]})
    env = {"PRODUCER_AUTH_PROVIDER": "multi", "PRODUCER_AUTH_CONFIG": config, "WORKER_AUTH_CONFIG": '"w"'}
    env["WORKER_AUTH_PROVIDER"] = "static"
    env["ALLOW_STATIC_TOKENS"] = "true"
    async with running(load_settings(environ=env, overrides={"provider": "memory"})) as node:
        for token in ("brief", "wrong"):
            headers = {"Authorization": f"Bearer {token}"}
            response = await node.post("/tasks", {"command": "x", "payload": {}}, headers)
            assert response.status_code == 401 and response.json() == {"error": "invalid token"}


async def test_jwt_tenant_claims_are_checked(jwt_api: Api) -> None:
    response = await jwt_api.post("/tasks", {"command": "x", "payload": {}}, bearer(jwt_api, tid="Not Valid"))
    assert response.status_code == 403 and response.json()["error"] == "invalid tenant claims"


async def test_jwt_admin_by_scope(jwt_api: Api) -> None:
    plain = await jwt_api.get("/admin/queues", bearer(jwt_api))
    assert plain.status_code == 403
    admin = await jwt_api.get("/admin/queues", bearer(jwt_api, scope="codeq:admin"))
    assert admin.status_code == 200


@pytest.fixture
async def role_header_api() -> AsyncIterator[Api]:
    async with running(make_settings(allow_insecure_role_header=True)) as node:
        yield node


async def test_x_role_grants_nothing_by_default(api: Api) -> None:
    response = await api.get("/admin/queues", {**PLAIN_PRODUCER, "X-Role": "ADMIN"})
    assert response.status_code == 403


async def test_x_role_with_the_insecure_dev_flag(role_header_api: Api) -> None:
    response = await role_header_api.get("/admin/queues", {**PLAIN_PRODUCER, "X-Role": " admin "})
    assert response.status_code == 200
    other = await role_header_api.get("/admin/queues", {**PLAIN_PRODUCER, "X-Role": "USER"})
    assert other.status_code == 403


async def test_jwks_keys_are_refreshed_in_the_background(jwt_api: Api, jwks: JwksServer) -> None:
    assert jwt_api.app.jwks_refresher is not None and jwt_api.app.jwks_refresher.running
    assert len(jwt_api.app.services.auth.key_sets()) == 2  # producer and worker


async def test_no_refresher_without_jwks(api: Api) -> None:
    assert api.app.jwks_refresher is None


async def test_a_jwt_producer_needs_the_produce_scope(jwt_api: Api) -> None:
    bare = bearer(jwt_api, scope="")
    refused = await jwt_api.post("/tasks", {"command": "render", "payload": {}}, bare)
    assert refused.status_code == 403 and "codeq:produce" in refused.json()["error"]
    admin_only = bearer(jwt_api, scope="codeq:admin")
    assert (await jwt_api.post("/tasks", {"command": "render", "payload": {}}, admin_only)).status_code == 403
    produce = bearer(jwt_api, scope="codeq:produce")
    assert (await jwt_api.post("/tasks", {"command": "anything", "payload": {}}, produce)).status_code == 202


async def test_a_jwt_producer_may_create_the_commands_its_event_types_list(jwt_api: Api) -> None:
    render_only = bearer(jwt_api, scope="", eventTypes=["render", "Thumbs"])
    for command in ("render", "thumbs"):  # as the worker's eventTypes: case-insensitive
        created = await jwt_api.post("/tasks", {"command": command, "payload": {}}, render_only)
        assert created.status_code == 202
    other = await jwt_api.post("/tasks", {"command": "billing", "payload": {}}, render_only)
    assert other.status_code == 403
    batch = await jwt_api.post(
        "/tasks/batch",
        {"tasks": [{"command": "render", "payload": {}}, {"command": "billing", "payload": {}}]},
        render_only,
    )
    assert batch.status_code == 200, batch.text
    first, second = batch.json()["results"]
    assert "id" in str(first) and "codeq:produce" in str(second)


async def test_backup_is_an_operator_scope_not_an_admin_one(jwt_api: Api) -> None:
    admin = bearer(jwt_api, scope="codeq:admin codeq:produce")
    refused = await jwt_api.post("/admin/backup", {"dest": "/srv/backups/x"}, admin)
    assert refused.status_code == 403
    operator = bearer(jwt_api, scope="codeq:operator")
    # Past the permission check: the memory store has nothing to copy (409).
    assert (await jwt_api.post("/admin/backup", {"dest": "/srv/backups/x"}, operator)).status_code == 409


@pytest.mark.parametrize("token", [PLAIN_PRODUCER, OTHER_PRODUCER])
async def test_membership_changes_are_for_operators_only(token: dict[str, str]) -> None:
    # A tenant's admin (globex) is no operator either: the voters serve every tenant.
    async with running(make_settings()) as api:
        body = {"op": "add", "id": "d", "raft": "127.0.0.1:7000", "http": "http://127.0.0.1:8000"}
        denied = await api.post("/admin/raft/members", body, token)
        assert denied.status_code == 403 and "operator" in denied.json()["error"]
        allowed = await api.post("/admin/raft/members", body)
        assert allowed.status_code == 400 and "raft is not enabled" in allowed.json()["error"]
