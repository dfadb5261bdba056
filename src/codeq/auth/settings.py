"""The authentication settings: which validator each side uses, and the opt-ins that loosen the edge.

Defined here rather than in `codeq.config` so that `auth` never imports `config`: the config
package builds the validators while validating, so that edge runs config → auth only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AuthProviderSettings:
    provider: str = ""  # "" = not configured
    config: object = None  # the parsed JSON document handed to the validator factory


@dataclass(frozen=True, slots=True)
class AuthSettings:
    producer: AuthProviderSettings = field(default_factory=AuthProviderSettings)
    worker: AuthProviderSettings = field(default_factory=AuthProviderSettings)
    allow_producer_as_worker: bool = False
    # Static tokens outside env dev need this explicit opt-in; the X-Role header grants admin only
    # with the second flag, which env dev alone allows (spec 03 gaps 1 and 4).
    allow_static_tokens: bool = False
    allow_insecure_role_header: bool = False
    # The reference's JWKS shortcuts (spec 03 §1, spec 04 gap 4): used only when set explicitly and
    # the side's provider is empty; never defaulted from a built-in identity host.
    identity_jwks_url: str = ""
    identity_issuer: str = ""
    identity_audience: str = ""
    worker_jwks_url: str = ""
    worker_issuer: str = ""
    worker_audience: str = "codeq-worker"
    allowed_clock_skew_seconds: int = 60
