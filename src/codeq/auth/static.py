"""Token validators that need no network: a fixed static token, and a composite of providers."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from codeq.auth.claims import Claims
from codeq.auth.jwt import JwksValidator
from codeq.core.clock import Clock
from codeq.core.errors import Unauthenticated

log = logging.getLogger("codeq.auth")


class Validator(Protocol):
    def validate(self, token: str) -> Claims:
        """The token's claims, or `Unauthenticated` (whose message is safe to show a client)."""
        ...


class StaticValidator:
    """One fixed token that always yields the same claims (spec 03 §1.3)."""

    __slots__ = ("_claims", "_digest")

    def __init__(self, token: str, claims: Claims) -> None:
        token = token.strip()
        if not token:
            raise ValueError("static auth: token is required")
        # Comparing fixed-size digests keeps the check constant-time in both content and length
        # (spec 03 gap 4: the reference compared the strings directly).
        self._digest = _digest(token)
        self._claims = claims

    @classmethod
    def from_config(cls, config: object) -> StaticValidator:
        if config is None:
            raise ValueError("static auth: missing config")
        if isinstance(config, str):
            return cls(config, Claims(subject="static", produce_by_default=True))
        if not isinstance(config, Mapping):
            raise ValueError("static auth: invalid config: expected a token string or an object")
        token = config.get("token")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("static auth: token is required")
        return cls(token, _claims_from(config))

    def validate(self, token: str) -> Claims:
        if hmac.compare_digest(_digest(token.strip()), self._digest):
            return self._claims
        raise Unauthenticated("invalid token")


def _digest(token: str) -> bytes:
    # Any fixed-size cryptographic digest does for the constant-time comparison; BLAKE2s is
    # built into Python, without OpenSSL's context set-up per call (a third of the cost).
    return hashlib.blake2s(token.encode()).digest()


def _claims_from(config: Mapping[str, object]) -> Claims:
    raw = config.get("raw", {})
    if not isinstance(raw, Mapping):
        raise ValueError("static auth: invalid config: raw must be an object")
    return Claims(
        subject=_text(config, "subject") or "static",
        email=_text(config, "email"),
        scopes=_strings(config, "scopes"),
        produce_by_default=config.get("scopes") is None,
        event_types=_strings(config, "eventTypes"),
        raw=MappingProxyType(dict(raw)),
        expires_at_ms=_expiry_ms(config),
    )


def _expiry_ms(config: Mapping[str, object]) -> int | None:
    """`expiresAt` in Unix seconds, like a JWT's `exp`: lets a static token lapse."""
    value = config.get("expiresAt")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("static auth: invalid config: expiresAt must be a number (Unix seconds)")
    return int(value * 1000)


def _text(config: Mapping[str, object], name: str) -> str:
    value = config.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"static auth: invalid config: {name} must be a string")
    return value


def _strings(config: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = config.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"static auth: invalid config: {name} must be a list of strings")
    return tuple(value)


class MultiValidator:
    """Providers tried in order; the first that accepts the token wins (spec 03 §1.4)."""

    __slots__ = ("_validators",)

    def __init__(self, validators: Sequence[Validator]) -> None:
        self._validators = tuple(validators)

    @classmethod
    def from_config(cls, config: object, clock: Clock | None = None) -> MultiValidator:
        providers = config.get("providers") if isinstance(config, Mapping) else None
        if not isinstance(providers, list) or not 2 <= len(providers) <= 4:
            raise ValueError("multi auth: providers must contain between 2 and 4 entries")
        validators: list[Validator] = []
        for i, entry in enumerate(providers):
            kind = entry.get("type") if isinstance(entry, Mapping) else None
            if not isinstance(kind, str) or not kind.strip() or kind.strip().lower() == "multi":
                raise ValueError(f"multi auth: provider {i} has an invalid type")
            try:
                validator = build_validator(kind, entry.get("config"), clock)
            except ValueError as exc:
                raise ValueError(f"multi auth: configure provider {i}: {exc}") from None
            if validator is not None:  # a non-blank type always builds or raises
                validators.append(validator)
        return cls(validators)

    @property
    def validators(self) -> tuple[Validator, ...]:
        return self._validators

    def validate(self, token: str) -> Claims:
        reason = "no provider"
        for validator in self._validators:
            try:
                return validator.validate(token)
            except Unauthenticated as exc:
                reason = exc.message
        # Which provider said what stays in the log, never in the answer (spec 03 gap 5).
        log.debug("token rejected by every provider; last reason: %s", reason)
        raise Unauthenticated("invalid token")


def build_validator(provider: str, config: object, clock: Clock | None = None) -> Validator | None:
    """The validator a provider name and its parsed JSON config describe; None when unconfigured.

    Raises ValueError with a message fit for a configuration report.
    """
    name = provider.strip().lower()
    if not name:
        return None
    if name == "static":
        return StaticValidator.from_config(config)
    if name == "multi":
        return MultiValidator.from_config(config, clock)
    if name == "jwks":
        return JwksValidator.from_config(config, clock)
    raise ValueError(f"unknown auth provider type: {provider}")
