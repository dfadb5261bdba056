"""The authentication edge: an `Authorization` header in, a `Principal` out (spec 03 §2)."""

from __future__ import annotations

import dataclasses
import logging
from types import MappingProxyType

from codeq.auth.claims import Claims, resolve_tenant
from codeq.auth.jwt import JwksValidator, KeySet
from codeq.auth.principal import (
    SCOPE_ADMIN,
    SCOPE_OPERATOR,
    SCOPE_PRODUCE,
    WILDCARD,
    WORKER_SCOPES,
    Principal,
)
from codeq.auth.settings import AuthSettings
from codeq.auth.static import MultiValidator, StaticValidator, Validator, build_validator
from codeq.core.clock import Clock, SystemClock
from codeq.core.errors import Unauthenticated
from codeq.core.request_context import REQUEST_TENANT

# The documented tokens `codeq serve --dev` accepts: public, so only ever for local work.
DEV_PRODUCER_TOKEN = "dev-producer"
DEV_WORKER_TOKEN = "dev-worker"
DEV_PRODUCER = StaticValidator(
    DEV_PRODUCER_TOKEN,
    # --dev is a convenience mode: its producer holds every producer power, the operator's included.
    Claims(
        subject="dev-producer",
        scopes=(SCOPE_PRODUCE, SCOPE_OPERATOR),
        raw=MappingProxyType({"tid": "dev", "role": "ADMIN"}),
    ),
)
DEV_WORKER = StaticValidator(
    DEV_WORKER_TOKEN,
    Claims(
        subject="dev-worker",
        scopes=WORKER_SCOPES,
        event_types=(WILDCARD,),
        raw=MappingProxyType({"tid": "dev"}),
    ),
)
_WORKER_SCOPE_SET = frozenset(WORKER_SCOPES)
_ALL_COMMANDS: tuple[str, ...] = (WILDCARD,)
_PRODUCER, _WORKER, _PRODUCER_AS_WORKER = "producer", "worker", "producer_as_worker"
log = logging.getLogger("codeq.auth")


def bearer_token(header: str | None) -> str:
    """The token of `Bearer <token>`: the scheme is case-insensitive, split at the first space."""
    if header is None or not header.strip():
        raise Unauthenticated("missing Authorization header")
    scheme, space, token = header.partition(" ")
    if not space or (scheme != "Bearer" and scheme.lower() != "bearer"):
        raise Unauthenticated("invalid Authorization format")
    return token


def is_admin(claims: Claims) -> bool:
    """Admin by the `codeq:admin` scope or a raw `role` of ADMIN; never by a request header."""
    if SCOPE_ADMIN in claims.scopes:
        return True
    role = claims.raw.get("role")
    return isinstance(role, str) and role.strip().upper() == "ADMIN"


class Authenticator:
    """Turns headers into principals.

    The `X-Role` header is consulted only when `allow_role_header` is set, which configuration
    allows in env dev alone (spec 03 gap 1); otherwise it never grants anything.
    """

    def __init__(
        self,
        producer: Validator | None,
        worker: Validator | None,
        allow_producer_as_worker: bool = False,
        clock: Clock | None = None,
        allow_role_header: bool = False,
    ) -> None:
        self._allow_role_header = allow_role_header
        self._producer = producer
        self._worker = worker
        self._allow_producer_as_worker = allow_producer_as_worker
        self._clock = clock or SystemClock()
        self._memo: dict[str, tuple[Claims, Principal]] = {}

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, clock: Clock | None = None, *, dev: bool = False
    ) -> Authenticator:
        """The edge `settings` describe; `dev` adds the documented dev tokens."""
        producer = build_validator(settings.producer.provider, settings.producer.config, clock)
        worker = build_validator(settings.worker.provider, settings.worker.config, clock)
        if dev:
            # The configured validators come first: the dev tokens only add, never shadow.
            producer = _chain(producer, DEV_PRODUCER)
            worker = _chain(worker, DEV_WORKER)
        return cls(
            producer, worker, settings.allow_producer_as_worker, clock, settings.allow_insecure_role_header
        )

    def key_sets(self) -> list[KeySet]:
        """The JWKS key sets behind the validators, for the background refresher."""
        return _key_sets(self._producer) + _key_sets(self._worker)

    def producer(self, header: str | None) -> Principal:
        return self._principal(_PRODUCER, self._validate_producer(bearer_token(header)))

    def admin(self, header: str | None, role_header: str | None = None) -> Principal:
        principal = self.producer(header)
        role = (role_header or "").strip().upper()
        if not principal.is_admin and self._allow_role_header and role == "ADMIN":
            log.warning("X-Role header makes %s admin (allowInsecureRoleHeader)", principal.subject)
            principal = dataclasses.replace(principal, is_admin=True)
        principal.require_admin()
        return principal

    def worker(self, header: str | None) -> Principal:
        token = bearer_token(header)
        try:
            return self._principal(_WORKER, self._validate_worker(token))
        except Unauthenticated:
            claims = _attempt(self._producer, token) if self._allow_producer_as_worker else None
            if claims is None:
                raise  # the worker's reason is the one reported (spec 03 §2.3)
            return self._principal(_PRODUCER_AS_WORKER, claims)

    def any(self, header: str | None) -> Principal:
        """A worker token with event types, else a producer token (spec 03 §2.4)."""
        token = bearer_token(header)
        claims = _attempt(self._worker, token)
        if claims is not None and claims.event_types:
            return self._principal(_WORKER, claims)
        claims = _attempt(self._producer, token)
        if claims is not None:
            return self._principal(_PRODUCER, claims)
        raise Unauthenticated("invalid token")

    def _validate_producer(self, token: str) -> Claims:
        # No validator answers 401 rather than the reference's 500: the caller cannot succeed.
        if self._producer is None:
            raise Unauthenticated("producer validator not configured")
        return self._producer.validate(token)

    def _validate_worker(self, token: str) -> Claims:
        if self._worker is None:
            raise Unauthenticated("worker validator not configured")
        claims = self._worker.validate(token)
        if not claims.event_types:
            raise Unauthenticated("missing eventTypes")
        if not claims.scopes:
            raise Unauthenticated("missing scope")
        return claims

    def _principal(self, kind: str, claims: Claims) -> Principal:
        # Static validators return the same Claims object every time, so remembering the last
        # principal per kind spares the hot path a tenant resolution and a few allocations.
        hit = self._memo.get(kind)
        if hit is not None and hit[0] is claims:
            principal = hit[1]
        else:
            principal = _new_principal(kind, claims)
            self._memo[kind] = (claims, principal)
        # Checked on every use, memoised or not: a lapsed token must stop working at once.
        if principal.expired(self._clock.now_ms()):
            # Refused like any other token (spec 03 gap 5): the reason is logged, not answered.
            log.info("token rejected: expired (%s)", principal.subject)
            raise Unauthenticated("invalid token")
        REQUEST_TENANT.set(principal.tenant)  # for the access log
        return principal


def _new_principal(kind: str, claims: Claims) -> Principal:
    tenant = resolve_tenant(claims)
    if kind == _PRODUCER_AS_WORKER:
        # allowProducerAsWorker: the producer token acts with every worker scope and command.
        scopes, event_types = _WORKER_SCOPE_SET, _ALL_COMMANDS
    else:
        scopes, event_types = frozenset(claims.scopes), claims.event_types
        if kind == _PRODUCER and claims.produce_by_default:
            scopes |= {SCOPE_PRODUCE}
    return Principal(
        subject=claims.subject,
        tenant=tenant,
        scopes=scopes,
        event_types=event_types,
        # `codeq:admin` is read from producer tokens only (spec 03 gap 11): a worker is never admin.
        is_admin=kind == _PRODUCER and is_admin(claims),
        is_worker=kind != _PRODUCER,
        expires_at_ms=claims.expires_at_ms,
    )


def _attempt(validator: Validator | None, token: str) -> Claims | None:
    if validator is None:
        return None
    try:
        return validator.validate(token)
    except Unauthenticated:
        return None


def _key_sets(validator: Validator | None) -> list[KeySet]:
    if isinstance(validator, JwksValidator):
        return [validator.key_set]
    if isinstance(validator, MultiValidator):
        return [key_set for child in validator.validators for key_set in _key_sets(child)]
    return []


def _chain(configured: Validator | None, dev: Validator) -> Validator:
    return dev if configured is None else MultiValidator((configured, dev))
