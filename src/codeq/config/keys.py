"""The key table: the setting, YAML key and environment name of everything the server reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

from codeq.config.raft import KEYS as RAFT_KEYS
from codeq.config.tree import RATE_LIMIT_SCOPES, LimitSettings

Kind = Literal["str", "int", "bool", "float", "json"]


@dataclass(frozen=True, slots=True)
class Key:
    target: str  # dotted path into Settings, e.g. "store.num_shards"
    yaml: str  # the reference's camelCase name within its YAML mapping
    env: str | None
    kind: Kind


@dataclass(frozen=True, slots=True)
class KeyName:
    """One row of `key_table()`: where a setting lives in the tree, the file, and the environment."""

    setting: str  # dotted path into Settings; "" for a key that is not one setting
    yaml: str  # dotted YAML path, e.g. "persistenceConfig.numShards"; "" when only an env name
    env: str  # "" when there is no environment name


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _same(target: str, name: str, kind: Kind) -> Key:
    """A key whose YAML name is the camelCase, and env name the UPPER_SNAKE, of `name`."""
    return Key(target, camel(name), name.upper(), kind)


TOP = (
    _same("http.port", "port", "int"),
    _same("http.host", "host", "str"),
    _same("env", "env", "str"),
    _same("timezone", "timezone", "str"),
    _same("log.level", "log_level", "str"),
    _same("log.format", "log_format", "str"),
    _same("store.provider", "persistence_provider", "str"),
    _same("tasks.default_lease_seconds", "default_lease_seconds", "int"),
    _same("tasks.max_attempts_default", "max_attempts_default", "int"),
    _same("tasks.backoff.policy", "backoff_policy", "str"),
    _same("tasks.backoff.base_seconds", "backoff_base_seconds", "int"),
    _same("tasks.backoff.max_seconds", "backoff_max_seconds", "int"),
    _same("retention.idempotency_ttl_seconds", "idempotency_ttl_seconds", "int"),
    _same("retention.seconds", "retention_seconds", "int"),
    _same("retention.completed_seconds", "retention_completed_seconds", "int"),
    _same("retention.failed_seconds", "retention_failed_seconds", "int"),
    _same("retention.dead_lettered_seconds", "retention_dead_lettered_seconds", "int"),
    _same("auth.producer.provider", "producer_auth_provider", "str"),
    _same("auth.producer.config", "producer_auth_config", "json"),
    _same("auth.worker.provider", "worker_auth_provider", "str"),
    _same("auth.worker.config", "worker_auth_config", "json"),
    *(
        _same(f"auth.{name}", name, "bool")
        for name in ("allow_producer_as_worker", "allow_static_tokens", "allow_insecure_role_header")
    ),
    *(
        _same(f"auth.{name}", name, "str")
        for name in (
            "identity_jwks_url",
            "identity_issuer",
            "identity_audience",
            "worker_jwks_url",
            "worker_issuer",
            "worker_audience",
        )
    ),
    _same("auth.allowed_clock_skew_seconds", "allowed_clock_skew_seconds", "int"),
    _same("shutdown_grace_seconds", "shutdown_grace_seconds", "float"),
    _same("grpc.producer_stream_addr", "producer_stream_addr", "str"),
    _same("grpc.worker_stream_addr", "worker_stream_addr", "str"),
    _same("grpc.max_message_bytes", "grpc_max_message_bytes", "int"),
    _same("grpc.hello_timeout_seconds", "grpc_hello_timeout_seconds", "float"),
    _same("grpc.max_unauthenticated_streams", "grpc_max_unauthenticated_streams", "int"),
    _same("grpc.max_concurrent_streams", "grpc_max_concurrent_streams", "int"),
    _same("grpc.max_in_flight", "grpc_max_in_flight", "int"),
    _same("grpc.max_ready_count", "grpc_max_ready_count", "int"),
    _same("grpc.ready_wait_seconds", "grpc_ready_wait_seconds", "int"),
    _same("tls.cert_file", "tls_cert_file", "str"),
    _same("tls.key_file", "tls_key_file", "str"),
    _same("tls.client_ca_file", "tls_client_ca_file", "str"),
    _same("webhooks.hmac_secret", "webhook_hmac_secret", "str"),
    _same("webhooks.signature_per_tenant", "webhook_signature_per_tenant", "bool"),
    _same("webhooks.require_signed", "require_signed_webhooks", "bool"),
    _same("webhooks.result_max_attempts", "result_webhook_max_attempts", "int"),
    _same("webhooks.result_base_backoff_seconds", "result_webhook_base_backoff_seconds", "int"),
    _same("webhooks.result_max_backoff_seconds", "result_webhook_max_backoff_seconds", "int"),
    _same("webhooks.allow_hosts", "webhook_allow_hosts", "str"),
    _same("webhooks.deny_hosts", "webhook_deny_hosts", "str"),
    _same("backup_root", "backup_root", "str"),
    _same("observability.metrics_addr", "metrics_addr", "str"),
    _same("observability.metrics_tenant_labels", "metrics_tenant_labels", "bool"),
    _same("observability.metrics_max_series", "metrics_max_series", "int"),
    _same("observability.access_log", "access_log", "bool"),
    _same("observability.tracing_enabled", "tracing_enabled", "bool"),
    _same("observability.tracing_otlp_endpoint", "tracing_otlp_endpoint", "str"),
    _same("observability.tracing_sample_ratio", "tracing_sample_ratio", "float"),
    _same("observability.service_name", "service_name", "str"),
    *(
        _same(f"subscriptions.{name}", f"subscription_{name}", "int")
        for name in (
            "min_interval_seconds",
            "cleanup_interval_seconds",
            "default_ttl_seconds",
            "max_ttl_seconds",
        )
    ),
)
# The keys inside `persistenceConfig` (YAML mapping or JSON string, env PERSISTENCE_CONFIG as JSON).
PERSISTENCE = (
    Key("store.path", "path", None, "str"),
    Key("store.fsync_on_commit", "fsyncOnCommit", None, "bool"),
    Key("store.num_shards", "numShards", None, "int"),
    Key("store.shard_processes", "shardProcesses", None, "bool"),
    Key("store.max_pending_bytes", "maxPendingBytes", None, "int"),
    Key("store.block_cache_mb", "blockCacheMb", None, "int"),
    Key("store.write_buffer_mb", "writeBufferMb", None, "int"),
    Key("store.max_write_buffers", "maxWriteBuffers", None, "int"),
)
# spec 04 gap 2: keys the reference never had get the uniform UPPER_SNAKE env name.
LIMITS = tuple(
    Key(f"limits.{f.name}", camel(f.name), f"LIMITS_{f.name.upper()}", "int") for f in fields(LimitSettings)
)
# `http: {maxHeadBytes, ...}`: the connection limits (issue 11); env HTTP_<UPPER_SNAKE>.
HTTP_LIMIT_FIELDS = (
    ("max_head_bytes", "int"),
    ("max_headers", "int"),
    ("head_timeout_seconds", "float"),
    ("body_timeout_seconds", "float"),
    ("idle_timeout_seconds", "float"),
    ("max_connections", "int"),
)
HTTP = tuple(
    Key(f"http.{name}", camel(name), f"HTTP_{name.upper()}", kind)  # type: ignore[arg-type]
    for name, kind in HTTP_LIMIT_FIELDS
)
# `rateLimit: {producer: {requestsPerMinute, burstSize}, ..., keyBy}`; env RATE_LIMIT_<SCOPE>_<KEY>.
RATE_SCOPES = {
    scope: tuple(
        Key(f"rate_limit.{scope}_{name}", camel(name), f"RATE_LIMIT_{scope.upper()}_{name.upper()}", "int")
        for name in ("requests_per_minute", "burst_size")
    )
    for scope in RATE_LIMIT_SCOPES
}
RATE_KEY_BY = Key("rate_limit.key_by", "keyBy", "RATE_LIMIT_KEY_BY", "str")
RATE = (*(k for keys in RATE_SCOPES.values() for k in keys), RATE_KEY_BY)
# The YAML mappings that hold sections, beside the keys of TOP.
SECTIONS = ("persistenceConfig", "limits", "rateLimit", "raft", "http")
# Reference modes this server does not implement: running without them while the operator asked
# for them would silently turn a cluster into independent single nodes (spec 04 gap 12).
UNSUPPORTED_MODES = (
    ("cluster", "CLUSTER_ENABLED", "cluster.enabled: the legacy cluster mode is not supported"),
    ("sharding", None, "sharding.enabled: Redis sharding is not supported"),
)
CONFIG_PATH_ENV = "CODEQ_CONFIG_PATH"
PERSISTENCE_CONFIG_ENV = "PERSISTENCE_CONFIG"
# Read by the CLI, not the server: one shell often runs both, so these are no typo.
CLIENT_ENV = frozenset(("CODEQ_BASE_URL", "CODEQ_PRODUCER_TOKEN", "CODEQ_WORKER_TOKEN"))
# Set by `codeq serve`'s supervisor for the shard process it starts (ADR 0009), not by users.
SHARD_PROCESS_ENV = "CODEQ_SHARD_PROCESS"
# Names the reference's server reads (spec 04 §2.2): set here without being in the key table, they
# would be silently ignored, so the start says so by name (spec 04 gap 2).
REFERENCE_ENV = frozenset(
    (
        "REDIS_ADDR",
        "REDIS_PASSWORD",
        "KVROCKS_PASSWORD",
        "LOCAL_ARTIFACTS_DIR",
        "IDENTITY_SERVICE_URL",
        "IDENTITY_SERVICE_API_KEY",
        "TRACING_ENABLED",
        "TRACING_SERVICE_NAME",
        "TRACING_OTLP_ENDPOINT",
        "TRACING_OTLP_INSECURE",
        "TRACING_SAMPLE_RATIO",
    )
)


def key_table() -> tuple[KeyName, ...]:
    """Every environment name and YAML key the server reads, in one table.

    Includes the names it reads only to refuse them (`cluster.enabled`, `CLUSTER_ENABLED`), so a
    deployment file using them is still recognised as speaking to this server.
    """
    rows = [KeyName(k.target, k.yaml, k.env or "") for k in TOP]
    rows.append(KeyName("", "persistenceConfig", PERSISTENCE_CONFIG_ENV))
    rows += [KeyName(k.target, f"persistenceConfig.{k.yaml}", "") for k in PERSISTENCE]
    rows += [KeyName(k.target, f"limits.{k.yaml}", k.env or "") for k in LIMITS]
    rows += [KeyName(k.target, f"http.{k.yaml}", k.env or "") for k in HTTP]
    rows += [
        KeyName(k.target, f"rateLimit.{scope}.{k.yaml}", k.env or "")
        for scope, keys in RATE_SCOPES.items()
        for k in keys
    ]
    rows.append(KeyName(RATE_KEY_BY.target, f"rateLimit.{RATE_KEY_BY.yaml}", RATE_KEY_BY.env or ""))
    rows += [KeyName(f"raft.{target}", f"raft.{yaml}", env) for yaml, (target, env, _) in RAFT_KEYS.items()]
    rows += [KeyName("", f"{block}.enabled", env or "") for block, env, _ in UNSUPPORTED_MODES]
    rows.append(KeyName("", "", CONFIG_PATH_ENV))
    return tuple(rows)


def unused_environment(env: Mapping[str, str]) -> list[str]:
    """The set `CODEQ_*` variables and reference names this server does not read, sorted."""
    known = {row.env for row in key_table() if row.env} | CLIENT_ENV | {SHARD_PROCESS_ENV}
    return sorted(
        name
        for name, value in env.items()
        if value and name not in known and (name.startswith("CODEQ_") or name in REFERENCE_ENV)
    )
