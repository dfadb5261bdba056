"""JWT/JWKS validation against a real local JWKS server, with an injected clock (spec 03 §1.1-1.2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from codeq.auth.jwt import MAX_JWKS_BYTES, JwksSettings, JwksValidator
from codeq.auth.static import build_validator
from codeq.core.clock import FakeClock
from codeq.core.errors import Unauthenticated
from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, jwks_server

KEY = SigningKey.rsa("k1")


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with jwks_server() as running:
        running.publish(KEY)
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def validator(server: JwksServer, clock: FakeClock, **config: Any) -> JwksValidator:
    base = {"jwksUrl": server.url, "issuer": ISSUER, "audience": AUDIENCE}
    built = build_validator("jwks", {**base, **config}, clock)
    assert isinstance(built, JwksValidator)
    return built


def claims(clock: FakeClock, **extra: Any) -> dict[str, Any]:
    now = clock.now_ms() // 1000
    return {"sub": "user-1", "tid": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, **extra}


def refused(v: JwksValidator, token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        v.validate(token)
    assert caught.value.message == "invalid token"  # never the reason (spec 03 gap 5)


def test_valid_token_maps_claims(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock)
    token = KEY.sign(claims(clock, scope="codeq:claim codeq:result", eventTypes=["render", 7], email="u@x"))
    got = v.validate(token)
    assert got.subject == "user-1" and got.email == "u@x"
    assert got.scopes == ("codeq:claim", "codeq:result") and got.event_types == ("render",)
    assert got.raw["tid"] == "acme"
    assert got.expires_at_ms == (clock.now_ms() // 1000 + 600 + 60) * 1000  # exp plus the leeway


@pytest.mark.parametrize("alg", ["RS384", "RS512"])
def test_rsa_family(server: JwksServer, clock: FakeClock, alg: str) -> None:
    key = SigningKey.rsa("k-" + alg, alg)
    server.publish(KEY, key)
    assert validator(server, clock).validate(key.sign(claims(clock))).subject == "user-1"


def test_es256_is_accepted(server: JwksServer, clock: FakeClock) -> None:
    key = SigningKey.ec("ec1")
    server.publish(KEY, key)
    assert validator(server, clock).validate(key.sign(claims(clock))).subject == "user-1"


def test_algorithm_allow_list_can_narrow(server: JwksServer, clock: FakeClock) -> None:
    key = SigningKey.ec("ec1")
    server.publish(KEY, key)
    refused(validator(server, clock, algorithms=["RS256"]), key.sign(claims(clock)))


def test_expired_with_leeway(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock, clockSkew=30 * 1_000_000_000)  # nanoseconds, as in the reference
    token = KEY.sign(claims(clock, exp=clock.now_ms() // 1000 + 10))
    assert v.validate(token)
    clock.advance(39)
    assert v.validate(token)  # past exp but inside the leeway
    clock.advance(1)
    refused(v, token)


def test_not_yet_valid_with_leeway(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock, clockSkew=0)
    token = KEY.sign(claims(clock, nbf=clock.now_ms() // 1000 + 5))
    refused(v, token)
    clock.advance(5)
    assert v.validate(token)


def test_exp_required_by_default(server: JwksServer, clock: FakeClock) -> None:
    body = claims(clock)
    del body["exp"]
    token = KEY.sign(body)
    refused(validator(server, clock), token)
    assert validator(server, clock, requireExp=False).validate(token).expires_at_ms is None


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "someone-else"},
        {"aud": ["a", "b"]},
        {"iss": ISSUER + "/"},
        {"iss": "https://evil"},
        {"exp": "soon"},
    ],
)
def test_wrong_claims(server: JwksServer, clock: FakeClock, change: dict[str, Any]) -> None:
    refused(validator(server, clock), KEY.sign(claims(clock, **change)))


def test_audience_list_containing_ours(server: JwksServer, clock: FakeClock) -> None:
    assert validator(server, clock).validate(KEY.sign(claims(clock, aud=["x", AUDIENCE])))


def test_unknown_kid(server: JwksServer, clock: FakeClock) -> None:
    stranger = SigningKey.rsa("k9")
    refused(validator(server, clock), stranger.sign(claims(clock)))


def test_missing_kid(server: JwksServer, clock: FakeClock) -> None:
    token = jwt.encode(claims(clock), KEY.private, algorithm="RS256")
    refused(validator(server, clock), token)


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none(server: JwksServer, clock: FakeClock) -> None:
    token = f"{_segment({'alg': 'none', 'kid': 'k1'})}.{_segment(claims(clock))}."
    refused(validator(server, clock), token)


def test_hs256_signed_with_the_public_key(server: JwksServer, clock: FakeClock) -> None:
    pem = KEY.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _segment({"alg": "HS256", "kid": "k1", "typ": "JWT"})
    body = _segment(claims(clock))
    signature = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    refused(validator(server, clock), token)


def test_tampered_payload(server: JwksServer, clock: FakeClock) -> None:
    header, _, signature = KEY.sign(claims(clock)).split(".")
    forged = _segment(claims(clock, tid="globex"))
    refused(validator(server, clock), f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b"])
def test_garbage(server: JwksServer, clock: FakeClock, token: str) -> None:
    refused(validator(server, clock), token)


def test_jwk_alg_must_match_the_token(server: JwksServer, clock: FakeClock) -> None:
    key = SigningKey.rsa("k2", "RS384")
    server.keys = [KEY.jwk(), {**key.jwk(), "alg": "RS512"}]
    refused(validator(server, clock), key.sign(claims(clock)))


def test_encryption_keys_are_ignored(server: JwksServer, clock: FakeClock) -> None:
    server.keys = [KEY.jwk(use="enc")]
    refused(validator(server, clock), KEY.sign(claims(clock)))


def test_key_rotation_without_restart(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock)
    assert v.validate(KEY.sign(claims(clock)))
    new = SigningKey.rsa("k2")
    server.publish(new)  # the old key is withdrawn, the new one published
    clock.advance(30)  # unknown kids refetch at most once per refreshIntervalSeconds
    assert v.validate(new.sign(claims(clock))).subject == "user-1"
    refused(v, KEY.sign(claims(clock)))  # the withdrawn key is gone with the refresh


def test_unknown_kids_are_negatively_cached(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock)
    assert v.validate(KEY.sign(claims(clock)))
    assert server.hits == 1
    stranger = SigningKey.rsa("k9")
    for _ in range(5):
        refused(v, stranger.sign(claims(clock)))
    assert server.hits == 1  # inside the refresh interval: no refetch per bad token
    clock.advance(30)
    refused(v, stranger.sign(claims(clock)))
    assert server.hits == 2


def test_cached_keys_are_reused_until_the_ttl(server: JwksServer, clock: FakeClock) -> None:
    server.cache_control = "public, max-age=60"
    v = validator(server, clock)
    for _ in range(3):
        assert v.validate(KEY.sign(claims(clock)))
    assert server.hits == 1
    clock.advance(61)  # max-age (60 s) is below the configured TTL (300 s): it wins
    assert v.validate(KEY.sign(claims(clock)))
    assert server.hits == 2


def test_outage_is_survived_for_the_stale_window(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock, cacheTtlSeconds=300, staleSeconds=600)
    assert v.validate(KEY.sign(claims(clock)))
    server.status = 503
    clock.advance(301)  # keys are due for a refresh, which fails: the cached ones still work
    assert v.validate(KEY.sign(claims(clock)))
    clock.advance(500)
    assert v.validate(KEY.sign(claims(clock)))
    clock.advance(100)  # past TTL + stale window: the outage now refuses tokens
    refused(v, KEY.sign(claims(clock)))
    server.status = 200
    clock.advance(30)
    assert v.validate(KEY.sign(claims(clock)))  # and recovery needs no restart


def test_outage_does_not_hammer_the_endpoint(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock)
    assert v.validate(KEY.sign(claims(clock)))
    server.status = 500
    clock.advance(301)
    hits = server.hits
    for _ in range(10):
        v.validate(KEY.sign(claims(clock)))
    assert server.hits == hits + 1


def test_unreachable_jwks(clock: FakeClock) -> None:
    with jwks_server() as gone:
        url = gone.url
    v = JwksValidator(
        JwksSettings(jwks_url=url, issuer=ISSUER, audience=AUDIENCE, http_timeout_seconds=2), clock
    )
    refused(v, KEY.sign(claims(clock)))


def test_an_oversized_jwks_document_is_refused(server: JwksServer, clock: FakeClock) -> None:
    padding = {"kid": "pad", "kty": "oct", "k": "x" * MAX_JWKS_BYTES}  # not a usable key anyway
    server.keys = [KEY.jwk(), padding]
    refused(validator(server, clock), KEY.sign(claims(clock)))
    assert server.hits == 1
    server.publish(KEY)  # the same key in a document under the cap
    clock.advance(31)  # past the refetch gate
    assert validator(server, clock).validate(KEY.sign(claims(clock))).subject == "user-1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "config must be an object"),
        ({"issuer": "i", "audience": "a"}, "jwksUrl is required"),
        ({"jwksUrl": "http://x", "audience": "a"}, "issuer is required"),
        ({"jwksUrl": "http://x", "issuer": "i"}, "audience is required"),
        ({"jwksUrl": "ftp://x", "issuer": "i", "audience": "a"}, "must be an http"),
        ({"jwksUrl": "http://x", "issuer": "i", "audience": "a", "algorithms": ["HS256"]}, "algorithms"),
        ({"jwksUrl": "http://x", "issuer": "i", "audience": "a", "clockSkew": -1}, "clockSkew"),
        ({"jwksUrl": "http://x", "issuer": "i", "audience": "a", "requireExp": "no"}, "requireExp"),
    ],
)
def test_config_errors(config: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JwksSettings.from_config(config)


def test_composite_of_jwks_and_static(server: JwksServer, clock: FakeClock) -> None:
    base = {"jwksUrl": server.url, "issuer": ISSUER, "audience": AUDIENCE}
    multi = build_validator(
        "multi",
        {"providers": [{"type": "jwks", "config": base}, {"type": "static", "config": "break-glass"}]},
        clock,
    )
    assert multi is not None
    assert multi.validate(KEY.sign(claims(clock))).subject == "user-1"
    assert multi.validate("break-glass").subject == "static"
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        multi.validate("nope")


def test_background_refresh_ahead_of_expiry(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock, cacheTtlSeconds=100)
    keys = v.key_set
    assert keys.refresh_if_due() and server.hits == 1  # cold: fetch at once
    assert not keys.refresh_if_due()
    clock.advance(79)
    assert not keys.refresh_if_due()
    new = SigningKey.rsa("k2")
    server.publish(KEY, new)
    clock.advance(1)  # 80% of the TTL: refreshed before any request had to wait for it
    assert keys.refresh_if_due() and server.hits == 2
    assert v.validate(new.sign(claims(clock))).subject == "user-1"
    assert server.hits == 2


def test_a_remembered_token_lapses_with_its_key(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock)
    token = KEY.sign(claims(clock, exp=clock.now_ms() // 1000 + 3600))
    assert v.validate(token) is v.validate(token)  # the second answer is the remembered verdict
    server.publish(SigningKey.rsa("k2"))  # the key is withdrawn
    clock.advance(301)  # the cached keys are due for a refresh, which drops k1
    refused(v, token)


def test_remembered_tokens_are_bounded(server: JwksServer, clock: FakeClock) -> None:
    v = validator(server, clock)
    v.CACHE_SIZE = 3  # type: ignore[misc]
    tokens = [KEY.sign(claims(clock, sub=f"user-{i}")) for i in range(5)]
    for token in tokens:
        v.validate(token)
    assert len(v._verdicts) == 3


def test_with_a_background_refresher_requests_never_fetch_for_known_kids(
    server: JwksServer, clock: FakeClock
) -> None:
    v = validator(server, clock, cacheTtlSeconds=300, staleSeconds=600)
    keys = v.key_set
    keys.refreshed_in_background = True
    assert v.validate(KEY.sign(claims(clock)))  # cold: the first request fetches
    server.status = 503
    clock.advance(400)  # past the TTL, the endpoint down: served from the stale keys, no fetch
    hits = server.hits
    assert v.validate(KEY.sign(claims(clock)))
    assert server.hits == hits
    assert keys.refresh_if_due() and server.hits == hits + 1  # the background thread tries
    clock.advance(600)  # past the stale window: refused, even for a known kid
    refused(v, KEY.sign(claims(clock)))
