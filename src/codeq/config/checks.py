"""Validation of a settings tree: every problem that keeps it from being served, reported together."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from dataclasses import fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from codeq.auth.settings import AuthProviderSettings
from codeq.auth.static import build_validator
from codeq.config.keys import HTTP_LIMIT_FIELDS, camel
from codeq.config.raft import check as check_raft
from codeq.config.sources import MISSING
from codeq.config.tree import (
    LOG_FORMATS,
    LOG_LEVELS,
    PERSISTENCE_PROVIDERS,
    RATE_LIMIT_KEYS,
    ObservabilitySettings,
    RateLimitSettings,
    Settings,
    StoreSettings,
    TlsSettings,
)
from codeq.core.backoff import POLICIES

_INT32_MAX = 2**31 - 1


def validate(settings: Settings) -> list[str]:
    """Every problem with a settings tree; empty when it can be served."""
    return [
        *_check_server(settings),
        *_check_numbers(settings),
        *_check_persistence(settings.store),
        *_check_auth(settings),
        *_check_streams(settings),
        *_check_tls(settings.tls),
        *_check_rate_limit(settings.rate_limit),
        *_check_callback_hosts(settings),
        *_check_observability(settings.observability),
        *check_raft(settings.raft, provider=settings.store.provider, valid_address=_split_address),
    ]


def _check_callback_hosts(s: Settings) -> list[str]:
    """An entry with a `/` is a CIDR: a typo there must not silently become a host name."""
    problems = []
    for name, entries in (
        ("webhookAllowHosts", s.webhooks.allow_hosts),
        ("webhookDenyHosts", s.webhooks.deny_hosts),
    ):
        for entry in (e.strip() for e in entries.split(",")):
            if "/" not in entry:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                problems.append(f"{name}: {entry!r} is not a valid CIDR")
    return problems


def _check_observability(o: ObservabilitySettings) -> list[str]:
    problems = []
    if o.metrics_addr and _split_address(o.metrics_addr) is None:
        problems.append(f"metricsAddr must look like host:port, got {o.metrics_addr!r}")
    if o.metrics_max_series < 10:
        problems.append(f"metricsMaxSeries must be at least 10, got {o.metrics_max_series}")
    if not 0.0 <= o.tracing_sample_ratio <= 1.0:
        problems.append(f"tracingSampleRatio must be between 0 and 1, got {o.tracing_sample_ratio}")
    if o.tracing_enabled and not _importable("opentelemetry.sdk.trace"):
        problems.append(
            "tracingEnabled needs the OpenTelemetry packages: install codeq with the 'otel' extra"
        )
    return problems


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def _check_rate_limit(r: RateLimitSettings) -> list[str]:
    problems = [
        f"rateLimit.{f.name.split('_', 1)[0]}.{camel(f.name.split('_', 1)[1])} must not be negative"
        for f in fields(r)
        if f.name != "key_by" and getattr(r, f.name) < 0
    ]
    if r.key_by not in RATE_LIMIT_KEYS:
        problems.append(f"rateLimit.keyBy must be one of {', '.join(RATE_LIMIT_KEYS)}, got {r.key_by!r}")
    return problems


def _check_server(s: Settings) -> list[str]:
    problems = []
    if not 0 <= s.http.port <= 65535:
        problems.append(f"port must be between 0 and 65535, got {s.http.port}")
    if not s.env:
        problems.append("env must not be blank")
    if s.log.level not in LOG_LEVELS:
        problems.append(f"logLevel must be one of {', '.join(LOG_LEVELS)}, got {s.log.level!r}")
    if s.log.format not in LOG_FORMATS:
        problems.append(f"logFormat must be json or text, got {s.log.format!r}")
    if not _is_timezone(s.timezone):
        problems.append(f"timezone {s.timezone!r} is not a known IANA time zone")
    if s.shutdown_grace_seconds < 0:
        problems.append("shutdownGraceSeconds must not be negative")
    problems += [
        f"http.{camel(name)} (HTTP_{name.upper()}) must be positive, got {value}"
        for name, _ in HTTP_LIMIT_FIELDS
        if not (value := getattr(s.http, name)) > 0
    ]
    return problems


def _is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_numbers(s: Settings) -> list[str]:
    limits, tasks, retention, webhooks, subs = s.limits, s.tasks, s.retention, s.webhooks, s.subscriptions
    problems = [
        f"{name} must be positive, got {value}"
        for name, value in (
            ("defaultLeaseSeconds", tasks.default_lease_seconds),
            ("maxAttemptsDefault", tasks.max_attempts_default),
            ("backoffBaseSeconds", tasks.backoff.base_seconds),
            ("backoffMaxSeconds", tasks.backoff.max_seconds),
            ("idempotencyTtlSeconds", retention.idempotency_ttl_seconds),
            ("retentionSeconds", retention.seconds),
            ("resultWebhookMaxAttempts", webhooks.result_max_attempts),
            ("resultWebhookBaseBackoffSeconds", webhooks.result_base_backoff_seconds),
            ("resultWebhookMaxBackoffSeconds", webhooks.result_max_backoff_seconds),
            ("subscriptionCleanupIntervalSeconds", subs.cleanup_interval_seconds),
            ("subscriptionDefaultTtlSeconds", subs.default_ttl_seconds),
            ("subscriptionMaxTtlSeconds", subs.max_ttl_seconds),
            ("persistenceConfig.maxPendingBytes", s.store.max_pending_bytes),
            ("persistenceConfig.blockCacheMb", s.store.block_cache_mb),
            ("persistenceConfig.writeBufferMb", s.store.write_buffer_mb),
            *((f"limits.{camel(f.name)}", getattr(limits, f.name)) for f in fields(limits)),
        )
        if value <= 0
    ]
    problems += [
        f"{name} must not be negative, got {value}"
        for name, value in (
            ("retentionCompletedSeconds", retention.completed_seconds),
            ("retentionFailedSeconds", retention.failed_seconds),
            ("retentionDeadLetteredSeconds", retention.dead_lettered_seconds),
            ("subscriptionMinIntervalSeconds", subs.min_interval_seconds),
        )
        if value < 0
    ]
    if tasks.default_lease_seconds > limits.max_lease_seconds:
        problems.append("defaultLeaseSeconds must not exceed limits.maxLeaseSeconds")
    if tasks.max_attempts_default > limits.max_attempts:
        problems.append("maxAttemptsDefault must not exceed limits.maxAttempts")
    if limits.max_payload_bytes > limits.max_body_bytes:
        problems.append("limits.maxPayloadBytes must not exceed limits.maxBodyBytes")
    if tasks.backoff.max_seconds < tasks.backoff.base_seconds:
        problems.append("backoffMaxSeconds must not be less than backoffBaseSeconds")
    if tasks.backoff.policy not in POLICIES:
        problems.append(f"backoffPolicy must be one of {', '.join(POLICIES)}, got {tasks.backoff.policy!r}")
    return problems


def _check_persistence(p: StoreSettings) -> list[str]:
    # spec 04 gap 1: an unknown provider is refused instead of silently selecting another backend.
    problems = []
    if p.provider not in PERSISTENCE_PROVIDERS:
        problems.append(
            f"persistenceProvider must be one of {', '.join(PERSISTENCE_PROVIDERS)}, got {p.provider!r}"
        )
    if not 1 <= p.num_shards <= 256:
        problems.append(f"persistenceConfig.numShards must be between 1 and 256, got {p.num_shards}")
    if p.max_write_buffers < 2:
        # One memtable would stall every write while it is flushed.
        problems.append(f"persistenceConfig.maxWriteBuffers must be at least 2, got {p.max_write_buffers}")
    if p.provider != "memory" and not p.path.strip():
        problems.append("persistenceConfig.path must not be blank")
    return problems


def _check_auth(s: Settings) -> list[str]:
    problems = []
    sides = (("producer", "PRODUCER", s.auth.producer), ("worker", "WORKER", s.auth.worker))
    for side, upper, auth in sides:
        if auth.config is MISSING:
            continue
        if not auth.provider:
            if auth.config is not None:
                problems.append(f"{side}AuthConfig is set but {side}AuthProvider is empty")
            elif not s.dev:
                # A server nobody can call is a configuration error (spec 04 gap 4).
                problems.append(
                    f"no {side} authentication configured: "
                    f"set {upper}_AUTH_PROVIDER/{upper}_AUTH_CONFIG or run with --dev"
                )
            continue
        try:
            build_validator(auth.provider, auth.config)
        except ValueError as exc:
            problems.append(f"{side}AuthProvider: {exc}{_shortcut_hint(s, side)}")
    if s.dev and s.env != "dev":
        # The dev tokens are public and one of them is an admin: never in a non-dev environment.
        problems.append(f"--dev (the public dev tokens) requires env dev, got {s.env!r}")
    return problems + _check_insecure_auth(s)


def _shortcut_hint(s: Settings, side: str) -> str:
    auth = s.auth
    if side == "producer" and auth.identity_jwks_url and auth.producer.provider == "jwks":
        return " (from identityJwksUrl: set IDENTITY_ISSUER and IDENTITY_AUDIENCE too)"
    if side == "worker" and auth.worker_jwks_url and auth.worker.provider == "jwks":
        return " (from workerJwksUrl: set WORKER_ISSUER and WORKER_AUDIENCE too)"
    return ""


def _check_insecure_auth(s: Settings) -> list[str]:
    # Outside --dev, static tokens need the explicit opt-in whatever `env` says: `env` defaults to
    # dev, so keying this on `env` let a server started without thought accept them silently.
    problems = [
        f"{side}AuthProvider uses static tokens: without --dev they need allowStaticTokens: true"
        for side, auth in (("producer", s.auth.producer), ("worker", s.auth.worker))
        if not s.dev and uses_static(auth) and not s.auth.allow_static_tokens
    ]
    if s.env != "dev" and s.auth.allow_insecure_role_header:
        problems.append(f"allowInsecureRoleHeader requires env dev, got {s.env!r}")
    if s.webhooks.require_signed and not s.webhooks.hmac_secret.strip():
        problems.append(
            "requireSignedWebhooks is set but webhookHmacSecret (WEBHOOK_HMAC_SECRET) is empty: "
            "callbacks and notifications would go out unsigned"
        )
    return problems


def uses_static(auth: AuthProviderSettings) -> bool:
    """Whether the provider is a static token, alone or inside a composite."""
    if auth.provider == "static":
        return True
    if auth.provider != "multi" or not isinstance(auth.config, dict):
        return False
    providers = auth.config.get("providers")
    return isinstance(providers, list) and any(
        isinstance(p, dict) and str(p.get("type", "")).strip().lower() == "static" for p in providers
    )


def _split_address(address: str) -> tuple[str, int] | None:
    """`host:port` (`[v6]:port`; an empty host means every interface), or None if malformed."""
    host, colon, port = address.strip().rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    if host.startswith("[") != host.endswith("]") or " " in host:
        return None
    return host, int(port)


def _check_streams(s: Settings) -> list[str]:
    problems = [
        f"{name} must look like host:port, got {address!r}"
        for name, address in (
            ("producerStreamAddr", s.grpc.producer_stream_addr),
            ("workerStreamAddr", s.grpc.worker_stream_addr),
        )
        if address and _split_address(address) is None
    ]
    # A stream must carry at least one task of the largest allowed payload; gRPC takes an int32.
    if not s.limits.max_payload_bytes <= s.grpc.max_message_bytes <= _INT32_MAX:
        problems.append(
            f"grpcMaxMessageBytes must be between limits.maxPayloadBytes and {_INT32_MAX}, "
            f"got {s.grpc.max_message_bytes}"
        )
    if not s.grpc.hello_timeout_seconds > 0:
        problems.append(f"grpcHelloTimeoutSeconds must be > 0, got {s.grpc.hello_timeout_seconds}")
    for name, value in (
        ("grpcMaxUnauthenticatedStreams", s.grpc.max_unauthenticated_streams),
        ("grpcMaxConcurrentStreams", s.grpc.max_concurrent_streams),
        ("grpcMaxInFlight", s.grpc.max_in_flight),
        ("grpcMaxReadyCount", s.grpc.max_ready_count),
        ("grpcReadyWaitSeconds", s.grpc.ready_wait_seconds),
    ):
        if value < 1:
            problems.append(f"{name} must be at least 1, got {value}")
    return problems


def _check_tls(tls: TlsSettings) -> list[str]:
    """A certificate needs its key (and the reverse); a client CA needs TLS; every file readable."""
    problems = []
    if bool(tls.cert_file) != bool(tls.key_file):
        problems.append("tlsCertFile and tlsKeyFile must be set together")
    if tls.client_ca_file and not tls.cert_file:
        problems.append("tlsClientCaFile needs tlsCertFile and tlsKeyFile")
    for name, path in (
        ("tlsCertFile", tls.cert_file),
        ("tlsKeyFile", tls.key_file),
        ("tlsClientCaFile", tls.client_ca_file),
    ):
        if path and not os.access(path, os.R_OK):
            problems.append(f"{name}: cannot read {path}")
    return problems
