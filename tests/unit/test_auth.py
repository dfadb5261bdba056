"""Authentication: validators, tenant resolution, the header edge, principals and the dev tokens."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest

from codeq.auth.claims import Claims, resolve_tenant
from codeq.auth.edge import Authenticator, bearer_token
from codeq.auth.principal import SCOPE_ADMIN, SCOPE_CLAIM, SCOPE_RESULT, WORKER_SCOPES, Principal
from codeq.auth.static import MultiValidator, StaticValidator, build_validator
from codeq.config import load_settings
from codeq.core.clock import FakeClock
from codeq.core.errors import Forbidden, Unauthenticated


def bearer(token: str) -> str:
    return f"Bearer {token}"


def static_validator(config: object) -> StaticValidator:
    return StaticValidator.from_config(config)


def principal(event_types: tuple[str, ...] = (), scopes: tuple[str, ...] = ()) -> Principal:
    return Principal("w", "acme", frozenset(scopes), event_types, is_admin=False, is_worker=True)


# -- tenant resolution (spec 03 §4) --------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "raw", "tenant"),
    [
        ("acme", {}, "acme"),
        (" acme ", {}, "acme"),
        ("user-1", {"tid": "globex"}, "globex"),
        ("x", {"tenantId": "globex"}, "globex"),
        ("x", {"tenant_id": "globex"}, "globex"),
        ("x", {"organizationId": "globex"}, "globex"),
        ("x", {"organization_id": " globex "}, "globex"),
        ("x", {"tid": "globex", "tenantId": " globex", "organization_id": "globex"}, "globex"),
        ("x", {"tid": "a-9", "role": "ADMIN"}, "a-9"),
        ("static", {}, "static"),
    ],
)
def test_tenant_resolution(subject: str, raw: dict[str, Any], tenant: str) -> None:
    assert resolve_tenant(Claims(subject=subject, raw=raw)) == tenant


@pytest.mark.parametrize(
    ("subject", "raw"),
    [
        ("", {}),  # missing
        ("   ", {}),
        ("Acme", {}),  # uppercase
        ("a", {}),  # one character
        ("user|123", {}),
        ("9acme", {}),
        ("acme", {"tid": "Globex"}),  # malformed claim: no fallback to the subject
        ("acme", {"tid": ""}),
        ("acme", {"tid": None}),
        ("acme", {"tid": 42}),
        ("acme", {"tenantId": ["globex"]}),
        ("acme", {"tid": "globex", "tenant_id": "initech"}),  # conflict
        ("acme", {"tenantId": "globex", "organizationId": "initech"}),
        ("acme", {"tid": "x" * 64}),
    ],
)
def test_invalid_tenant_claims(subject: str, raw: dict[str, Any]) -> None:
    with pytest.raises(Forbidden, match=r"^invalid tenant claims$"):
        resolve_tenant(Claims(subject=subject, raw=raw))


# -- static validator ----------------------------------------------------------------------


def test_static_token_string_config() -> None:
    claims = static_validator(" dev-token ").validate("  dev-token")
    assert claims.subject == "static" and resolve_tenant(claims) == "static"


def test_static_object_config() -> None:
    validator = static_validator(
        {
            "token": "t",
            "subject": "worker-dev",
            "email": "dev@codeq.local",
            "scopes": ["codeq:claim"],
            "eventTypes": ["render"],
            "raw": {"tid": "acme"},
        }
    )
    claims = validator.validate("t")
    assert (claims.subject, claims.email, claims.scopes, claims.event_types) == (
        "worker-dev",
        "dev@codeq.local",
        ("codeq:claim",),
        ("render",),
    )
    assert dict(claims.raw) == {"tid": "acme"}
    assert validator.validate("t") is claims


@pytest.mark.parametrize("token", ["", "t2", "T", "t t", "tt"])
def test_static_rejects_other_tokens(token: str) -> None:
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        static_validator({"token": "t"}).validate(token)


def test_static_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    validator = static_validator("secret")
    validator.validate("secret")
    with pytest.raises(Unauthenticated):
        validator.validate("a-much-longer-guess")
    # Both sides are fixed-size digests: neither content nor length of the secret leaks.
    assert len(calls) == 2 and all(len(a) == len(b) == 32 for a, b in calls)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "static auth: missing config"),
        ("  ", "static auth: token is required"),
        ({"subject": "x"}, "static auth: token is required"),
        ({"token": " "}, "static auth: token is required"),
        (42, "static auth: invalid config"),
        (
            {"token": "t", "scopes": "codeq:claim"},
            "static auth: invalid config: scopes must be a list of strings",
        ),
        (
            {"token": "t", "eventTypes": [1]},
            "static auth: invalid config: eventTypes must be a list of strings",
        ),
        ({"token": "t", "raw": []}, "static auth: invalid config: raw must be an object"),
        ({"token": "t", "subject": 5}, "static auth: invalid config: subject must be a string"),
        ({"token": "t", "expiresAt": "soon"}, "static auth: invalid config: expiresAt must be a number"),
        ({"token": "t", "expiresAt": True}, "static auth: invalid config: expiresAt must be a number"),
    ],
)
def test_static_config_errors(config: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        static_validator(config)


# -- multi validator and the factory -------------------------------------------------------


def multi(*providers: object) -> MultiValidator:
    return MultiValidator.from_config({"providers": list(providers)})


def test_multi_first_success_wins_in_list_order() -> None:
    validator = multi(
        {"type": "static", "config": {"token": "shared", "subject": "first"}},
        {"type": "static", "config": {"token": "shared", "subject": "second"}},
        {"type": "STATIC", "config": {"token": "only-third", "subject": "third"}},
    )
    assert validator.validate("shared").subject == "first"
    assert validator.validate("only-third").subject == "third"


def test_multi_failure_never_leaks_provider_detail() -> None:
    validator = multi({"type": "static", "config": "a"}, {"type": "static", "config": "b"})
    with pytest.raises(Unauthenticated) as caught:
        validator.validate("c")
    assert caught.value.message == "invalid token"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "multi auth: providers must contain between 2 and 4 entries"),
        ({"providers": [{"type": "static", "config": "a"}]}, "between 2 and 4 entries"),
        ({"providers": [{"type": "static", "config": "a"}] * 5}, "between 2 and 4 entries"),
        (
            {"providers": [{"type": "static", "config": "a"}, {"type": "multi"}]},
            "multi auth: provider 1 has an invalid type",
        ),
        (
            {"providers": [{"type": " ", "config": "a"}, {"type": "static", "config": "b"}]},
            "provider 0 has an invalid type",
        ),
        ({"providers": ["static", {"type": "static", "config": "b"}]}, "provider 0 has an invalid type"),
        (
            {"providers": [{"type": "static", "config": "a"}, {"type": "static", "config": {}}]},
            "multi auth: configure provider 1: static auth: token is required",
        ),
        (
            {"providers": [{"type": "jwks", "config": {}}, {"type": "static", "config": "b"}]},
            "multi auth: configure provider 0: jwks auth: jwksUrl is required",
        ),
    ],
)
def test_multi_config_errors(config: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MultiValidator.from_config(config)


def test_build_validator() -> None:
    assert build_validator("", None) is None
    assert isinstance(build_validator(" Static ", "t"), StaticValidator)
    with pytest.raises(ValueError, match=r"^jwks auth: jwksUrl is required$"):
        build_validator("jwks", {})
    with pytest.raises(ValueError, match=r"^unknown auth provider type: ldap$"):
        build_validator("ldap", {})


# -- header parsing (spec 03 §2.1) ---------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_authorization_header(header: str | None) -> None:
    with pytest.raises(Unauthenticated, match=r"^missing Authorization header$"):
        bearer_token(header)


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearerabc", "Basic dXNlcg=="])
def test_invalid_authorization_format(header: str) -> None:
    with pytest.raises(Unauthenticated, match=r"^invalid Authorization format$"):
        bearer_token(header)


@pytest.mark.parametrize(
    ("header", "token"), [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER a b", "a b")]
)
def test_bearer_token(header: str, token: str) -> None:
    assert bearer_token(header) == token


# -- the edge ------------------------------------------------------------------------------

ADMIN_BY_ROLE = {"token": "boss", "subject": "acme", "raw": {"role": " admin "}}
ADMIN_BY_SCOPE = {"token": "ops", "subject": "acme", "scopes": [SCOPE_ADMIN]}
PLAIN = {"token": "plain", "subject": "acme", "raw": {"role": "USER"}}
WORKER = {
    "token": "w",
    "subject": "render-1",
    "scopes": [SCOPE_CLAIM],
    "eventTypes": ["Render"],
    "raw": {"tid": "acme"},
}
NO_EVENT_TYPES = {"token": "w-none", "subject": "acme", "scopes": [SCOPE_CLAIM]}
NO_SCOPES = {"token": "w-noscope", "subject": "acme", "eventTypes": ["render"]}
BAD_TENANT = {"token": "bad-tenant", "subject": "Not A Tenant"}


def validators(*configs: dict[str, Any]) -> MultiValidator:
    return MultiValidator([StaticValidator.from_config(c) for c in configs])


@pytest.fixture
def edge() -> Authenticator:
    return Authenticator(
        validators(ADMIN_BY_ROLE, ADMIN_BY_SCOPE, PLAIN, BAD_TENANT),
        validators(WORKER, NO_EVENT_TYPES, NO_SCOPES, BAD_TENANT),
    )


def test_producer_principal(edge: Authenticator) -> None:
    p = edge.producer(bearer("plain"))
    assert (p.subject, p.tenant, p.is_admin, p.is_worker) == ("acme", "acme", False, False)
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.producer(bearer("w"))


def test_admin_by_role_or_scope_and_403_otherwise(edge: Authenticator) -> None:
    assert edge.admin(bearer("boss")).is_admin
    assert edge.admin(bearer("ops")).is_admin
    with pytest.raises(Forbidden, match=r"^unauthorized. Admin only$"):
        edge.admin(bearer("plain"))
    with pytest.raises(Unauthenticated):
        edge.admin(bearer("w"))


def test_static_producers_produce_unless_their_scopes_say_otherwise(edge: Authenticator) -> None:
    # No `scopes` in a static token's config: it keeps producing, as documented before the
    # produce permission existed. Listing scopes makes the list exact.
    edge.producer(bearer("plain")).require_produce("render")
    with pytest.raises(Forbidden, match="codeq:produce"):
        edge.producer(bearer("ops")).require_produce("render")
    string_config = Authenticator(StaticValidator.from_config("tok"), None)
    string_config.producer(bearer("tok")).require_produce("render")


def test_the_dev_producer_holds_every_producer_power() -> None:
    dev = Authenticator.from_settings(load_settings(environ={}, overrides={"dev": True}).auth, dev=True)
    principal = dev.admin(bearer("dev-producer"))
    principal.require_produce("anything")
    principal.require_operator()
    with pytest.raises(Forbidden):
        dev.worker(bearer("dev-worker")).require_operator()


def test_worker_principal(edge: Authenticator) -> None:
    p = edge.worker(bearer("w"))
    assert (p.subject, p.tenant, p.is_worker, p.is_admin, p.event_types) == (
        "render-1",
        "acme",
        True,
        False,
        ("Render",),
    )
    p.require_scope(SCOPE_CLAIM)
    with pytest.raises(Forbidden, match=r"^missing scope$"):
        p.require_scope(SCOPE_RESULT)


def test_worker_tokens_need_event_types_and_scopes(edge: Authenticator) -> None:
    with pytest.raises(Unauthenticated, match=r"^missing eventTypes$"):
        edge.worker(bearer("w-none"))
    with pytest.raises(Unauthenticated, match=r"^missing scope$"):
        edge.worker(bearer("w-noscope"))
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.worker(bearer("boss"))


def test_tenant_failures_are_403(edge: Authenticator) -> None:
    for call in (edge.producer, edge.any):
        with pytest.raises(Forbidden, match=r"^invalid tenant claims$"):
            call(bearer("bad-tenant"))


def test_missing_validators_answer_401() -> None:
    edge = Authenticator(None, None)
    with pytest.raises(Unauthenticated, match=r"^producer validator not configured$"):
        edge.producer(bearer("x"))
    with pytest.raises(Unauthenticated, match=r"^worker validator not configured$"):
        edge.worker(bearer("x"))
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.any(bearer("x"))


def test_header_errors_come_before_validation(edge: Authenticator) -> None:
    with pytest.raises(Unauthenticated, match=r"^missing Authorization header$"):
        edge.worker(None)
    with pytest.raises(Unauthenticated, match=r"^invalid Authorization format$"):
        edge.any("Token w")


def test_any_prefers_a_worker_with_event_types_then_a_producer(edge: Authenticator) -> None:
    assert edge.any(bearer("w")).is_worker
    no_scopes = edge.any(bearer("w-noscope"))  # scopes are not needed to read
    assert no_scopes.is_worker and not no_scopes.scopes
    assert not edge.any(bearer("boss")).is_worker
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.any(bearer("w-none"))  # a worker without event types, and no producer knows it
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.any(bearer("nobody"))


def test_producer_as_worker_when_allowed() -> None:
    edge = Authenticator(validators(PLAIN), validators(WORKER), allow_producer_as_worker=True)
    p = edge.worker(bearer("plain"))
    assert p.is_worker and not p.is_admin and p.scopes == frozenset(WORKER_SCOPES)
    assert p.worker_commands(None) is None and p.subject == "acme"
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.worker(bearer("nobody"))
    strict = Authenticator(validators(PLAIN), validators(WORKER))
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        strict.worker(bearer("plain"))


def test_the_worker_reason_wins_when_the_producer_fallback_fails() -> None:
    edge = Authenticator(validators(PLAIN), validators(NO_SCOPES), allow_producer_as_worker=True)
    with pytest.raises(Unauthenticated, match=r"^missing scope$"):
        edge.worker(bearer("w-noscope"))


def test_static_tokens_reuse_their_principal(edge: Authenticator) -> None:
    assert edge.producer(bearer("plain")) is edge.producer(bearer("plain"))
    assert edge.worker(bearer("w")) is edge.worker(bearer("w"))
    assert (
        edge.producer(bearer("boss")).subject == "acme" and edge.producer(bearer("plain")).is_admin is False
    )


def test_tokens_with_an_expiry_stop_working_when_it_passes() -> None:
    clock = FakeClock(start_ms=1_000_000_000_000)
    lapsing = {**PLAIN, "token": "brief", "expiresAt": 1_000_000_030}
    lapsing_worker = {**WORKER, "token": "w-brief", "expiresAt": 1_000_000_030.5}
    edge = Authenticator(validators(lapsing), validators(lapsing_worker), clock=clock)
    assert static_validator(lapsing).validate("brief").expires_at_ms == 1_000_000_030_000
    assert edge.producer(bearer("brief")).expires_at_ms == 1_000_000_030_000
    worker = edge.worker(bearer("w-brief"))
    assert worker.expires_at_ms == 1_000_000_030_500 and not worker.expired(clock.now_ms())
    clock.advance(30)
    assert not worker.expired(clock.now_ms())
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.producer(bearer("brief"))  # the memoised principal is checked too
    edge.worker(bearer("w-brief"))  # half a second left
    clock.advance(0.5)
    assert worker.expired(clock.now_ms())
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        edge.worker(bearer("w-brief"))
    assert edge_without_expiry().producer(bearer("plain")).expires_at_ms is None


def edge_without_expiry() -> Authenticator:
    return Authenticator(validators(PLAIN), None)


# -- principal rules -----------------------------------------------------------------------


def test_allows_command_is_case_insensitive() -> None:
    p = principal(("Render", "thumbnail"))
    assert p.allows_command("render") and p.allows_command("THUMBNAIL") and not p.allows_command("email")
    assert principal(("*",)).allows_command("anything")


def test_worker_commands() -> None:
    p = principal(("render", "thumb"))
    assert p.worker_commands(None) == ["render", "thumb"]
    assert p.worker_commands([]) == ["render", "thumb"]
    assert p.worker_commands(["RENDER"]) == ["RENDER"]
    with pytest.raises(Forbidden, match=r"^event type not allowed$"):
        p.worker_commands(["render", "email"])
    wildcard = principal(("*",))
    assert wildcard.worker_commands(None) is None
    assert wildcard.worker_commands(["email"]) == ["email"]
    with pytest.raises(Forbidden):
        principal(()).worker_commands(None)


def test_principals_compare_by_their_fields() -> None:
    assert principal(("a",)) == principal(("a",)) and principal(("a",)) != principal(("b",))


# -- dev tokens ----------------------------------------------------------------------------


def dev_edge(**env: str) -> Authenticator:
    settings = load_settings(environ=env, overrides={"dev": True})
    return Authenticator.from_settings(settings.auth, dev=settings.dev)


def test_dev_tokens() -> None:
    edge = dev_edge()
    producer = edge.admin(bearer("dev-producer"))
    assert (producer.subject, producer.tenant, producer.is_admin) == ("dev-producer", "dev", True)
    worker = edge.worker(bearer("dev-worker"))
    assert (worker.subject, worker.tenant, worker.scopes) == ("dev-worker", "dev", frozenset(WORKER_SCOPES))
    assert worker.worker_commands(None) is None
    assert edge.any(bearer("dev-worker")).is_worker
    with pytest.raises(Unauthenticated):
        edge.producer(bearer("dev-worker"))


def test_dev_tokens_are_tried_after_the_configured_validators() -> None:
    edge = dev_edge(
        PRODUCER_AUTH_PROVIDER="static",
        PRODUCER_AUTH_CONFIG=json.dumps({"token": "dev-producer", "subject": "shadow"}),
    )
    assert edge.producer(bearer("dev-producer")).subject == "shadow"
    assert edge.worker(bearer("dev-worker")).subject == "dev-worker"


def test_without_dev_there_are_no_dev_tokens() -> None:
    env = {
        "PRODUCER_AUTH_PROVIDER": "static",
        "PRODUCER_AUTH_CONFIG": '"p"',
        "WORKER_AUTH_PROVIDER": "static",
        "WORKER_AUTH_CONFIG": json.dumps({"token": "w", "scopes": [SCOPE_CLAIM], "eventTypes": ["*"]}),
        "ALLOW_STATIC_TOKENS": "true",
    }
    edge = Authenticator.from_settings(load_settings(environ=env).auth)
    assert edge.producer(bearer("p")).tenant == "static"
    with pytest.raises(Unauthenticated):
        edge.producer(bearer("dev-producer"))
    with pytest.raises(Unauthenticated):
        edge.worker(bearer("dev-worker"))


def test_a_worker_instance_principal_is_made_once_and_its_memo_is_bounded() -> None:
    from codeq.auth.principal import MAX_INSTANCES

    worker = Principal("svc", "acme", frozenset(WORKER_SCOPES), ("*",), is_admin=False, is_worker=True)
    first = worker.instance("w1")
    assert first.subject == "svc/w1" and first.tenant == "acme" and first.scopes == worker.scopes
    assert worker.instance("w1") is first  # the same object: no new principal per request
    assert worker.instance("svc/w1") is first
    assert worker.instance("w2").subject == "svc/w2"
    assert worker.instance("") is worker
    for n in range(MAX_INSTANCES + 10):  # worker ids are the caller's: the memo stays bounded
        assert worker.instance(f"x{n}").subject == f"svc/x{n}"
    assert len(worker._instances or {}) <= MAX_INSTANCES
    assert worker.instance("w1") == first and worker.instance("w1").subject == "svc/w1"
