"""Loading: flags > environment > YAML file > defaults into the settings tree, validated once."""

from __future__ import annotations

import dataclasses
import logging
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from codeq.auth.settings import AuthProviderSettings, AuthSettings
from codeq.config.checks import uses_static, validate
from codeq.config.keys import CONFIG_PATH_ENV
from codeq.config.sources import Sources
from codeq.config.tree import Settings

log = logging.getLogger("codeq.config")
T = TypeVar("T")


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
    path = config_path if config_path is not None else env.get(CONFIG_PATH_ENV) or None
    if path is not None:
        sources.yaml_file(path)
    sources.environment(env)
    sources.overrides(overrides or {})
    settings = build(Settings, sources.values)
    settings = dataclasses.replace(settings, auth=_with_jwks_shortcuts(settings.auth))
    problems = sources.problems + validate(settings)
    if problems:
        raise ConfigError(problems)
    _warn_about(settings)
    return settings


def _warn_about(settings: Settings) -> None:
    """What is allowed but unsafe outside --dev, said once at start."""
    if settings.dev:
        return
    auth = settings.auth
    if any(uses_static(a) for a in (auth.producer, auth.worker)):
        log.warning("static token authentication is enabled without --dev (allowStaticTokens)")
    if not settings.webhooks.hmac_secret.strip():
        # Any task may name a webhook and any worker may subscribe: without a secret a receiver
        # cannot tell codeq's POSTs from anyone else's.
        log.warning(
            "webhookHmacSecret is not set: result callbacks and queue-ready notifications go out "
            "unsigned (set requireSignedWebhooks: true to refuse to start like this)"
        )


def build(cls: type[T], values: Mapping[str, object]) -> T:
    """An instance of the dataclass `cls` from values keyed by dotted path; sections recursively."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            kwargs[f.name] = values[f.name]
            continue
        prefix = f.name + "."
        nested = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        if nested:
            kwargs[f.name] = build(hints[f.name], nested)
    return cls(**kwargs)


def _with_jwks_shortcuts(auth: AuthSettings) -> AuthSettings:
    """`identityJwksUrl` / `workerJwksUrl` stand for a jwks provider on a side that names none."""
    changes: dict[str, Any] = {}
    shortcuts = (
        ("producer", auth.producer, auth.identity_jwks_url, auth.identity_issuer, auth.identity_audience),
        ("worker", auth.worker, auth.worker_jwks_url, auth.worker_issuer, auth.worker_audience),
    )
    for side, provider, url, issuer, audience in shortcuts:
        if url and not provider.provider and provider.config is None:
            config = {
                "jwksUrl": url,
                "issuer": issuer,
                "audience": audience,
                # nanoseconds, as in the reference
                "clockSkew": auth.allowed_clock_skew_seconds * 1_000_000_000,
            }
            changes[side] = AuthProviderSettings("jwks", config)
    return dataclasses.replace(auth, **changes) if changes else auth
