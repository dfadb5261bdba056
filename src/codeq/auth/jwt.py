"""JWT bearer tokens checked against a JWKS document (spec 03 §1.1–1.2, with its gaps 2, 3 and 5).

The only module that imports PyJWT. Differences from the reference, each on purpose:
- ES256 is accepted beside RS256/384/512 (an allow-list; HS*, PS*, `none` never are);
- the configured leeway really applies to `exp` and `nbf`, and `exp` is required by default;
- keys are cached with a TTL (capped by the JWKS `Cache-Control: max-age`), an unknown `kid`
  refetches at most once per `refreshIntervalSeconds` (negative caching), one fetch runs at a
  time, and during a JWKS outage the last good keys keep working for `staleSeconds`;
- a JWK's own `alg` and `use`, when present, must fit the token;
- the client only ever sees `invalid token`; the reason goes to the log.

Time comes from the injected clock, so expiry and caching are testable without sleeping. A fetch
blocks the calling thread for at most `httpTimeout`; the gates above bound how often that happens.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from jwt.exceptions import PyJWKError, PyJWTError

from codeq.auth.claims import Claims
from codeq.core.clock import Clock, SystemClock
from codeq.core.errors import Unauthenticated
from codeq.h1 import H1Error, fetch

log = logging.getLogger("codeq.auth")

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256")
# Which JWK key type (and curve) each accepted algorithm needs.
_KEY_TYPES = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
}
_NS = 1_000_000_000
_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True, slots=True)
class Jwk:
    """One usable key of the set, with the JWK fields a token must agree with."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None
    key: Any  # the `cryptography` public key


Fetch = Callable[[str, float], tuple[int, bytes, str]]  # (url, timeout s) -> (status, body, cache-control)


@dataclass(frozen=True, slots=True)
class JwksSettings:
    jwks_url: str
    issuer: str
    audience: str
    leeway_seconds: float = 60.0
    http_timeout_seconds: float = 5.0
    require_exp: bool = True
    algorithms: tuple[str, ...] = ALGORITHMS
    cache_ttl_seconds: float = 300.0
    refresh_interval_seconds: float = 30.0
    stale_seconds: float = 3600.0

    @classmethod
    def from_config(cls, config: object) -> JwksSettings:
        """The reference's keys (`clockSkew`, `httpTimeout` in nanoseconds) plus codeq's own."""
        if not isinstance(config, Mapping):
            raise ValueError("jwks auth: config must be an object")
        url, issuer, audience = (_required(config, name) for name in ("jwksUrl", "issuer", "audience"))
        if not url.startswith(("http://", "https://")):
            raise ValueError("jwks auth: jwksUrl must be an http(s) URL")
        algorithms = config.get("algorithms", list(ALGORITHMS))
        if not isinstance(algorithms, list) or not algorithms or any(a not in ALGORITHMS for a in algorithms):
            raise ValueError(f"jwks auth: algorithms must be a non-empty subset of {', '.join(ALGORITHMS)}")
        require_exp = config.get("requireExp", True)
        if not isinstance(require_exp, bool):
            raise ValueError("jwks auth: requireExp must be true or false")
        return cls(
            jwks_url=url,
            issuer=issuer,
            audience=audience,
            leeway_seconds=_nanoseconds(config, "clockSkew", 60.0),
            http_timeout_seconds=_nanoseconds(config, "httpTimeout", 5.0),
            require_exp=require_exp,
            algorithms=tuple(algorithms),
            cache_ttl_seconds=_seconds(config, "cacheTtlSeconds", 300.0),
            refresh_interval_seconds=_seconds(config, "refreshIntervalSeconds", 30.0),
            stale_seconds=_seconds(config, "staleSeconds", 3600.0),
        )


def _required(config: Mapping[str, object], name: str) -> str:
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"jwks auth: {name} is required")
    return value.strip()


def _number(config: Mapping[str, object], name: str, default: float) -> float:
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"jwks auth: {name} must be a non-negative number")
    return float(value)


def _nanoseconds(config: Mapping[str, object], name: str, default_seconds: float) -> float:
    return _number(config, name, default_seconds * _NS) / _NS


def _seconds(config: Mapping[str, object], name: str, default: float) -> float:
    return _number(config, name, default)


# A key set is a few kilobytes; the cap keeps a broken or hostile endpoint from filling memory.
MAX_JWKS_BYTES = 1024 * 1024


def http_fetch(url: str, timeout: float) -> tuple[int, bytes, str]:
    """GET the JWKS with codeq's HTTP/1.1 client (ADR 0002); redirects are not followed."""
    # 0 means "no timeout", as in the reference.
    response = fetch(url, timeout=timeout or None, max_body_bytes=MAX_JWKS_BYTES)
    return response.status, response.body, response.header("cache-control") or ""


class KeySet:
    """The JWKS keys by kid: cached, refreshed one fetch at a time, and kept through outages."""

    def __init__(self, settings: JwksSettings, clock: Clock, fetch: Fetch = http_fetch) -> None:
        self._settings = settings
        self._clock = clock
        self._fetch = fetch
        self._keys: dict[str, Jwk] = {}
        self._fresh_until_ms = -1  # keys younger than this are used without asking again
        self._usable_until_ms = -1  # after this even the stale keys are dropped
        self._last_attempt_ms: int | None = None
        self._refresh_at_ms = -1  # a background refresh is due from here
        self.generation = 0  # bumped whenever the keys are replaced: cached verdicts lapse
        # Set when a background thread calls `refresh_if_due`: then a request never waits on a
        # fetch for a kid it knows, even past the TTL (stale-while-revalidate, bounded by the
        # stale window); only an unknown kid or a cold cache fetches inline.
        self.refreshed_in_background = False
        self._lock = threading.Lock()  # single flight: a second caller waits and reuses the result

    def key(self, kid: str) -> Jwk:
        now = self._clock.now_ms()
        known = self._keys.get(kid)
        if known is not None and now < self._fresh_until_ms:
            return known
        if known is not None and self.refreshed_in_background and now < self._usable_until_ms:
            return known
        with self._lock:
            now = self._clock.now_ms()
            if (now >= self._fresh_until_ms or kid not in self._keys) and self._may_fetch(now):
                self._refresh(now)
            key = self._keys.get(kid)
            if key is None:
                raise _reject(f"key {kid!r} not found in JWKS")
            if now >= self._usable_until_ms:
                raise _reject("JWKS keys are stale beyond the grace period")
            return key

    def refresh_if_due(self) -> bool:
        """Fetch ahead of expiry (from 80% of the TTL on), so requests seldom wait on a fetch.

        Meant for a background thread; returns whether it fetched.
        """
        with self._lock:
            now = self._clock.now_ms()
            if now < self._refresh_at_ms or not self._may_fetch(now):
                return False
            self._refresh(now)
            return True

    def usable(self, now: int) -> bool:
        return now < self._usable_until_ms

    def _may_fetch(self, now: int) -> bool:
        last = self._last_attempt_ms
        return last is None or now - last >= self._settings.refresh_interval_seconds * 1000

    def _refresh(self, now: int) -> None:
        self._last_attempt_ms = now
        url = self._settings.jwks_url
        try:
            status, body, cache_control = self._fetch(url, self._settings.http_timeout_seconds)
            if status != 200:
                raise ValueError(f"JWKS endpoint returned status {status}")
            keys = _parse_jwks(body)
        except (H1Error, ValueError) as exc:
            # The last good keys stay until `_usable_until_ms` (stale-on-error).
            log.warning("JWKS fetch from %s failed: %s", url, exc)
            return
        ttl_ms = self._settings.cache_ttl_seconds * 1000
        max_age = _MAX_AGE.search(cache_control)
        if max_age is not None:
            ttl_ms = min(ttl_ms, int(max_age.group(1)) * 1000)
        if keys != self._keys:
            self.generation += 1
        self._keys = keys
        self._refresh_at_ms = now + int(ttl_ms * 0.8)
        self._fresh_until_ms = now + int(ttl_ms)
        self._usable_until_ms = self._fresh_until_ms + int(self._settings.stale_seconds * 1000)


def _parse_jwks(body: bytes) -> dict[str, Jwk]:
    try:
        document = json.loads(body)
    except ValueError:
        raise ValueError("JWKS body is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS body has no keys list")
    keys: dict[str, Jwk] = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid or entry.get("kty") not in ("RSA", "EC"):
            continue  # not a key this server could use; others in the set may still be
        if entry.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except (PyJWKError, PyJWTError, ValueError, TypeError) as exc:
            log.warning("JWKS key %r ignored: %s", kid, exc)
            continue
        alg, crv = entry.get("alg"), entry.get("crv")
        keys[kid] = Jwk(kid, entry["kty"], _text_or_none(crv), _text_or_none(alg), parsed.key)
    return keys


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class _Verdict:
    claims: Claims
    until_ms: int
    generation: int


class JwksValidator:
    """Tokens signed by a key of the JWKS, for one issuer and audience.

    A token that passed is remembered for up to `CACHE_MS` (never past its `exp` plus the
    leeway, never across a change of the key set), so a client reusing its token costs a
    dict lookup instead of a signature check (~75 µs for RS256 here, docs/benchmarks.md).
    """

    CACHE_MS = 60_000
    CACHE_SIZE = 4096

    def __init__(self, settings: JwksSettings, clock: Clock | None = None, fetch: Fetch = http_fetch) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._keys = KeySet(settings, self._clock, fetch)
        self._required = ["exp"] if settings.require_exp else []
        self._verdicts: dict[str, _Verdict] = {}

    @property
    def key_set(self) -> KeySet:
        return self._keys

    @classmethod
    def from_config(cls, config: object, clock: Clock | None = None) -> JwksValidator:
        return cls(JwksSettings.from_config(config), clock)

    def validate(self, token: str) -> Claims:
        now = self._clock.now_ms()
        hit = self._verdicts.get(token)
        keys = self._keys
        if hit is not None and now < hit.until_ms and hit.generation == keys.generation and keys.usable(now):
            return hit.claims
        claims = self._verify(token)
        until = now + self.CACHE_MS
        if claims.expires_at_ms is not None:  # the leeway is already in it
            until = min(until, claims.expires_at_ms)
        if len(self._verdicts) >= self.CACHE_SIZE:
            self._verdicts.pop(next(iter(self._verdicts)))  # the oldest entry
        self._verdicts[token] = _Verdict(claims, until, keys.generation)
        return claims

    def _verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError as exc:
            raise _reject(f"malformed token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._settings.algorithms:
            raise _reject(f"unexpected signing method: {alg}")
        if not isinstance(kid, str) or not kid:
            raise _reject("missing kid in token header")
        key = self._keys.key(kid)
        _check_key_fits(key, alg)
        payload = self._decode(token, key, alg)
        self._check_times(payload)
        return _claims(payload, self._lapse_ms)

    def _decode(self, token: str, key: Jwk, alg: str) -> dict[str, Any]:
        s = self._settings
        # Times are checked against the injected clock below, not PyJWT's wall clock.
        options: Any = {
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "require": self._required,
        }
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=s.audience, issuer=s.issuer, options=options
            )
        except PyJWTError as exc:
            raise _reject(str(exc)) from None
        return payload

    def _lapse_ms(self, exp: float) -> int:
        """When a token with this `exp` stops being accepted: the leeway is added here only, and
        the result is the principal's expiry, so the edge and a stream's watchdog agree with
        this check instead of refusing (or ending) at `exp` itself."""
        return int(exp * 1000) + int(self._settings.leeway_seconds * 1000)

    def _check_times(self, payload: Mapping[str, object]) -> None:
        now_ms = self._clock.now_ms()
        leeway = self._settings.leeway_seconds
        exp, nbf = payload.get("exp"), payload.get("nbf")
        for name, value in (("exp", exp), ("nbf", nbf)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise _reject(f"{name} must be a number")
        if isinstance(exp, int | float) and now_ms >= self._lapse_ms(exp):
            raise _reject("token is expired")
        if isinstance(nbf, int | float) and now_ms / 1000 < nbf - leeway:
            raise _reject("token is not yet valid")


def _check_key_fits(key: Jwk, alg: str) -> None:
    kty, crv = _KEY_TYPES[alg]
    if key.kty != kty or (crv is not None and key.crv != crv):
        raise _reject(f"key {key.kid!r} cannot verify {alg}")
    if key.alg and key.alg != alg:
        raise _reject(f"key {key.kid!r} is for {key.alg}, token uses {alg}")


def _claims(payload: Mapping[str, Any], lapse_ms: Callable[[float], int]) -> Claims:
    scope = payload.get("scope")
    event_types = payload.get("eventTypes")
    exp = payload.get("exp")
    subject = payload.get("sub")
    email = payload.get("email")
    return Claims(
        subject=subject if isinstance(subject, str) else "",
        email=email if isinstance(email, str) else "",
        # spec 03 §1.1: `scope` is one space-separated string; arrays are ignored.
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        event_types=tuple(e for e in event_types if isinstance(e, str))
        if isinstance(event_types, list)
        else (),
        raw=MappingProxyType(dict(payload)),
        expires_at_ms=lapse_ms(exp) if isinstance(exp, int | float) else None,
    )


def _reject(reason: str) -> Unauthenticated:
    # spec 03 gap 5: the reason is logged, the client learns only that the token was refused.
    log.info("token rejected: %s", reason)
    return Unauthenticated("invalid token")
