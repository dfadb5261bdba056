"""What a validator vouches for about a token, and the tenant those claims name (spec 03 §4)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NoReturn

from codeq.core.errors import Forbidden
from codeq.core.names import is_valid_tenant

log = logging.getLogger("codeq.auth")

# The canonical claim first, then its aliases (ADR 0002 in the reference).
TENANT_CLAIMS = ("tid", "tenantId", "tenant_id", "organizationId", "organization_id")
_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    email: str = ""
    scopes: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    raw: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    expires_at_ms: int | None = None  # None: the token does not expire
    # A static token configured without `scopes` keeps producing as it always did: the operator
    # wrote that token for this server (JWTs never get this; they need `codeq:produce`).
    produce_by_default: bool = False


def resolve_tenant(claims: Claims) -> str:
    """The caller's tenant, or `Forbidden("invalid tenant claims")`; claim values are never echoed."""
    raw = claims.raw
    tenant: str | None = None
    for name in TENANT_CLAIMS:
        if name not in raw:
            continue
        value = raw[name]
        # A present claim that is not a valid tenant never falls back to the subject.
        if not isinstance(value, str) or not is_valid_tenant(value.strip()):
            _reject("malformed", name)
        value = value.strip()
        if tenant is not None and value != tenant:
            _reject("conflict", name)
        tenant = value
    if tenant is not None:
        return tenant
    subject = claims.subject.strip()
    if not subject:
        _reject("missing", "sub")
    if not is_valid_tenant(subject):
        _reject("malformed", "sub")
    return subject


def _reject(reason: str, claim: str) -> NoReturn:
    log.debug("invalid tenant claims: %s (%s)", reason, claim)
    raise Forbidden("invalid tenant claims")
