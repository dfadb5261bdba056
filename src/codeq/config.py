"""The settings entry point: load flags > environment > YAML file > defaults into the tree, validate once."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from codeq.config_checks import uses_static, validate
from codeq.config_raft import RaftSettings
from codeq.config_sources import Sources
from codeq.config_tree import (
    LOG_FORMATS,
    LOG_LEVELS,
    PERSISTENCE_PROVIDERS,
    RATE_LIMIT_KEYS,
    RATE_LIMIT_SCOPES,
    AuthProviderSettings,
    KiB,
    LimitSettings,
    MiB,
    PersistenceSettings,
    RateLimitSettings,
    Settings,
)
from codeq.core.backoff import BackoffPolicy

# What `from codeq.config import ...` offers: the tree lives in config_tree, the checks in config_checks.
__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PERSISTENCE_PROVIDERS",
    "RATE_LIMIT_KEYS",
    "RATE_LIMIT_SCOPES",
    "AuthProviderSettings",
    "ConfigError",
    "KiB",
    "LimitSettings",
    "MiB",
    "PersistenceSettings",
    "RaftSettings",
    "RateLimitSettings",
    "Settings",
    "load_settings",
    "uses_static",
    "validate",
]

log = logging.getLogger("codeq.config")


class ConfigError(Exception):
    """Every problem found in the configuration, reported together."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid config: " + "; ".join(problems))
        self.problems = problems


def load_settings(
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read every source, build the tree, and raise `ConfigError` listing all problems at once."""
    env = os.environ if environ is None else environ
    sources = Sources()
    path = config_path if config_path is not None else env.get("CODEQ_CONFIG_PATH") or None
    if path is not None:
        sources.yaml_file(path)
    sources.environment(env)
    sources.overrides(overrides or {})
    settings = _with_jwks_shortcuts(_build(sources.values))
    problems = sources.problems + validate(settings)
    if problems:
        raise ConfigError(problems)
    if settings.env != "dev" and any(uses_static(a) for a in (settings.producer_auth, settings.worker_auth)):
        log.warning("static token authentication is enabled outside dev (env=%s)", settings.env)
    return settings


def _build(values: dict[str, object]) -> Settings:
    def part(prefix: str) -> dict[str, Any]:
        return {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}

    top: dict[str, Any] = {k: v for k, v in values.items() if "." not in k}
    return Settings(
        **top,
        backoff=BackoffPolicy(**part("backoff.")),
        persistence=PersistenceSettings(**part("persistence.")),
        producer_auth=AuthProviderSettings(**part("producer_auth.")),
        worker_auth=AuthProviderSettings(**part("worker_auth.")),
        limits=LimitSettings(**part("limits.")),
        rate_limit=RateLimitSettings(**part("rate_limit.")),
        raft=RaftSettings(**part("raft.")),
    )


def _with_jwks_shortcuts(s: Settings) -> Settings:
    """`identityJwksUrl` / `workerJwksUrl` stand for a jwks provider on a side that names none."""
    changes: dict[str, Any] = {}
    shortcuts = (
        ("producer_auth", s.producer_auth, s.identity_jwks_url, s.identity_issuer, s.identity_audience),
        ("worker_auth", s.worker_auth, s.worker_jwks_url, s.worker_issuer, s.worker_audience),
    )
    for side, auth, url, issuer, audience in shortcuts:
        if url and not auth.provider and auth.config is None:
            config = {
                "jwksUrl": url,
                "issuer": issuer,
                "audience": audience,
                "clockSkew": s.allowed_clock_skew_seconds * 1_000_000_000,  # nanoseconds, as in the reference
            }
            changes[side] = AuthProviderSettings("jwks", config)
    return replace(s, **changes) if changes else s
