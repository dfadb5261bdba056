"""The key table (YAML, environment and flag names of every setting) and reading those sources."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import yaml

from codeq.config_raft import from_env as raft_from_env
from codeq.config_raft import from_yaml as raft_from_yaml
from codeq.config_tree import RATE_LIMIT_SCOPES, LimitSettings

# The logger keeps the name it had before the split, so log filters on `codeq.config` still match.
log = logging.getLogger("codeq.config")

Kind = Literal["str", "int", "bool", "float", "json"]


@dataclass(frozen=True, slots=True)
class _Key:
    target: str  # dotted path into Settings, e.g. "persistence.num_shards"
    yaml: str  # the reference's camelCase name within its YAML mapping
    env: str | None
    kind: Kind


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


_TOP = (
    _Key("port", "port", "PORT", "int"),
    _Key("host", "host", "HOST", "str"),
    _Key("env", "env", "ENV", "str"),
    _Key("timezone", "timezone", "TIMEZONE", "str"),
    _Key("log_level", "logLevel", "LOG_LEVEL", "str"),
    _Key("log_format", "logFormat", "LOG_FORMAT", "str"),
    _Key("persistence.provider", "persistenceProvider", "PERSISTENCE_PROVIDER", "str"),
    _Key("default_lease_seconds", "defaultLeaseSeconds", "DEFAULT_LEASE_SECONDS", "int"),
    _Key("max_attempts_default", "maxAttemptsDefault", "MAX_ATTEMPTS_DEFAULT", "int"),
    _Key("backoff.policy", "backoffPolicy", "BACKOFF_POLICY", "str"),
    _Key("backoff.base_seconds", "backoffBaseSeconds", "BACKOFF_BASE_SECONDS", "int"),
    _Key("backoff.max_seconds", "backoffMaxSeconds", "BACKOFF_MAX_SECONDS", "int"),
    _Key("idempotency_ttl_seconds", "idempotencyTtlSeconds", "IDEMPOTENCY_TTL_SECONDS", "int"),
    _Key("retention_seconds", "retentionSeconds", "RETENTION_SECONDS", "int"),
    _Key(
        "retention_completed_seconds",
        "retentionCompletedSeconds",
        "RETENTION_COMPLETED_SECONDS",
        "int",
    ),
    _Key("retention_failed_seconds", "retentionFailedSeconds", "RETENTION_FAILED_SECONDS", "int"),
    _Key(
        "retention_dead_lettered_seconds",
        "retentionDeadLetteredSeconds",
        "RETENTION_DEAD_LETTERED_SECONDS",
        "int",
    ),
    _Key("producer_auth.provider", "producerAuthProvider", "PRODUCER_AUTH_PROVIDER", "str"),
    _Key("producer_auth.config", "producerAuthConfig", "PRODUCER_AUTH_CONFIG", "json"),
    _Key("worker_auth.provider", "workerAuthProvider", "WORKER_AUTH_PROVIDER", "str"),
    _Key("worker_auth.config", "workerAuthConfig", "WORKER_AUTH_CONFIG", "json"),
    _Key("allow_producer_as_worker", "allowProducerAsWorker", "ALLOW_PRODUCER_AS_WORKER", "bool"),
    _Key("allow_static_tokens", "allowStaticTokens", "ALLOW_STATIC_TOKENS", "bool"),
    *(
        _Key(name, camel(name), name.upper(), "str")
        for name in (
            "identity_jwks_url",
            "identity_issuer",
            "identity_audience",
            "worker_jwks_url",
            "worker_issuer",
            "worker_audience",
        )
    ),
    _Key("allowed_clock_skew_seconds", "allowedClockSkewSeconds", "ALLOWED_CLOCK_SKEW_SECONDS", "int"),
    _Key("allow_insecure_role_header", "allowInsecureRoleHeader", "ALLOW_INSECURE_ROLE_HEADER", "bool"),
    _Key("shutdown_grace_seconds", "shutdownGraceSeconds", "SHUTDOWN_GRACE_SECONDS", "float"),
    _Key("producer_stream_addr", "producerStreamAddr", "PRODUCER_STREAM_ADDR", "str"),
    _Key("worker_stream_addr", "workerStreamAddr", "WORKER_STREAM_ADDR", "str"),
    _Key("grpc_max_message_bytes", "grpcMaxMessageBytes", "GRPC_MAX_MESSAGE_BYTES", "int"),
    _Key("webhook_hmac_secret", "webhookHmacSecret", "WEBHOOK_HMAC_SECRET", "str"),
    _Key("result_webhook_max_attempts", "resultWebhookMaxAttempts", "RESULT_WEBHOOK_MAX_ATTEMPTS", "int"),
    _Key(
        "result_webhook_base_backoff_seconds",
        "resultWebhookBaseBackoffSeconds",
        "RESULT_WEBHOOK_BASE_BACKOFF_SECONDS",
        "int",
    ),
    _Key(
        "result_webhook_max_backoff_seconds",
        "resultWebhookMaxBackoffSeconds",
        "RESULT_WEBHOOK_MAX_BACKOFF_SECONDS",
        "int",
    ),
    _Key("webhook_allow_hosts", "webhookAllowHosts", "WEBHOOK_ALLOW_HOSTS", "str"),
    _Key("webhook_deny_hosts", "webhookDenyHosts", "WEBHOOK_DENY_HOSTS", "str"),
    _Key("backup_root", "backupRoot", "BACKUP_ROOT", "str"),
    *(
        _Key(f"subscription_{name}", camel(f"subscription_{name}"), f"SUBSCRIPTION_{name.upper()}", "int")
        for name in (
            "min_interval_seconds",
            "cleanup_interval_seconds",
            "default_ttl_seconds",
            "max_ttl_seconds",
        )
    ),
)
# The keys inside `persistenceConfig` (YAML mapping or JSON string, env PERSISTENCE_CONFIG as JSON).
_PERSISTENCE = (
    _Key("persistence.path", "path", None, "str"),
    _Key("persistence.fsync_on_commit", "fsyncOnCommit", None, "bool"),
    _Key("persistence.num_shards", "numShards", None, "int"),
    _Key("persistence.max_pending_bytes", "maxPendingBytes", None, "int"),
)
# spec 04 gap 2: keys the reference never had get the uniform UPPER_SNAKE env name.
_LIMITS = tuple(
    _Key(f"limits.{f.name}", camel(f.name), f"LIMITS_{f.name.upper()}", "int") for f in fields(LimitSettings)
)
# `rateLimit: {producer: {requestsPerMinute, burstSize}, ..., keyBy}`; env RATE_LIMIT_<SCOPE>_<KEY>.
_RATE_SCOPES = {
    scope: tuple(
        _Key(
            f"rate_limit.{scope}_{name}",
            camel(name),
            f"RATE_LIMIT_{scope.upper()}_{name.upper()}",
            "int",
        )
        for name in ("requests_per_minute", "burst_size")
    )
    for scope in RATE_LIMIT_SCOPES
}
_RATE_KEY_BY = _Key("rate_limit.key_by", "keyBy", "RATE_LIMIT_KEY_BY", "str")
_RATE = (*(k for keys in _RATE_SCOPES.values() for k in keys), _RATE_KEY_BY)
_BY_TARGET = {key.target: key for key in (*_TOP, *_PERSISTENCE, *_LIMITS, *_RATE)}
_BY_TARGET["dev"] = _Key("dev", "dev", None, "bool")
_OVERRIDE_ALIASES = {
    "data_path": "persistence.path",
    "num_shards": "persistence.num_shards",
    "fsync_on_commit": "persistence.fsync_on_commit",
    "provider": "persistence.provider",
}
# Reference modes this server does not implement: running without them while the operator asked
# for them would silently turn a cluster into independent single nodes (spec 04 gap 12).
_UNSUPPORTED_MODES = (
    ("cluster", "CLUSTER_ENABLED", "cluster.enabled: the legacy cluster mode is not supported"),
    ("sharding", None, "sharding.enabled: Redis sharding is not supported"),
)
MISSING = object()
_TYPES: dict[str, type] = {"str": str, "bool": bool}
# spec 04 gap 5: names compared later are normalised once, on the way in.
_PROVIDERS = ("persistence.provider", "producer_auth.provider", "worker_auth.provider")
_NORMALISED = frozenset(("env", "log_level", "log_format", *_PROVIDERS))
_NOUNS = {"str": "a string", "bool": "true or false", "int": "an integer", "float": "a number"}


class Sources:
    """Values by target, later sources overwriting earlier ones, and every problem met on the way.

    Unlike the reference, a value that does not parse is a problem, never silently ignored.
    """

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.problems: list[str] = []

    def yaml_file(self, path: str) -> None:
        # Unlike the reference, a file named explicitly must exist: a typo must not mean "defaults".
        try:
            with open(path, encoding="utf-8") as handle:
                doc = yaml.safe_load(handle)
        except FileNotFoundError:
            self.problems.append(f"config file {path} does not exist")
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.problems.append(f"config file {path} cannot be read: {exc}")
        else:
            if isinstance(doc, dict):
                self.document(doc)
            elif doc is not None:
                self.problems.append(f"config file {path} must contain a mapping")

    def document(self, doc: dict[Any, Any]) -> None:
        for key in _TOP:
            if key.yaml in doc:
                self.put(key, doc[key.yaml], key.yaml)
        if "persistenceConfig" in doc:
            self.section(doc["persistenceConfig"], _PERSISTENCE, "persistenceConfig")
        if "limits" in doc:
            self.section(doc["limits"], _LIMITS, "limits")
        if "rateLimit" in doc:
            self.rate_limit(doc["rateLimit"])
        if doc.get("raft") is not None:
            self.raft(raft_from_yaml(doc["raft"], self.problems))
        for name, _, message in _UNSUPPORTED_MODES:
            block = doc.get(name)
            if isinstance(block, dict) and block.get("enabled") is True:
                self.problems.append(message)
        known = {key.yaml for key in _TOP} | {"persistenceConfig", "limits", "rateLimit", "raft"}
        unused = sorted(str(k) for k in doc if k not in known)
        if unused:
            log.warning("config file keys not used by codeq: %s", ", ".join(unused))

    def rate_limit(self, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.problems.append("rateLimit must be a mapping")
            return
        for name, raw in value.items():
            if name == _RATE_KEY_BY.yaml:
                self.put(_RATE_KEY_BY, raw, "rateLimit.keyBy")
            elif name in _RATE_SCOPES:
                self.section(raw, _RATE_SCOPES[name], f"rateLimit.{name}")
            else:
                self.problems.append(f"rateLimit: unknown key {name!r}")

    def section(self, value: object, keys: tuple[_Key, ...], where: str) -> None:
        """A nested mapping; spec 04 gap 3: `persistenceConfig` may also be a JSON string."""
        if isinstance(value, str) and keys is _PERSISTENCE:
            value = self.json(value, where)
        if value is None or value is MISSING:
            return
        if not isinstance(value, dict):
            self.problems.append(f"{where} must be a mapping")
            return
        by_name = {key.yaml: key for key in keys}
        for name, raw in value.items():
            key = by_name.get(name)
            if key is None:
                self.problems.append(f"{where}: unknown key {name!r}")
            else:
                self.put(key, raw, f"{where}.{name}")

    def environment(self, env: Mapping[str, str]) -> None:
        for key in (*_TOP, *_LIMITS, *_RATE):
            # An empty variable counts as unset: compose files often write `NAME=` for "default".
            if key.env is not None and env.get(key.env, ""):
                self.put(key, env[key.env], key.env, from_env=True)
        if env.get("PERSISTENCE_CONFIG", ""):
            self.section(env["PERSISTENCE_CONFIG"], _PERSISTENCE, "PERSISTENCE_CONFIG")
        for _, variable, message in _UNSUPPORTED_MODES:
            if variable is not None and _env_bool(env.get(variable, "")):
                self.problems.append(message)
        self.raft(raft_from_env(env, self.problems))

    def raft(self, values: dict[str, object]) -> None:
        self.values.update({f"raft.{name}": value for name, value in values.items()})

    def overrides(self, overrides: Mapping[str, object]) -> None:
        for name, raw in overrides.items():
            key = _BY_TARGET.get(_OVERRIDE_ALIASES.get(name, name))
            if key is None:
                self.problems.append(f"unknown override {name!r}")
            else:
                self.put(key, raw, "--" + name.replace("_", "-"))

    def put(self, key: _Key, raw: object, where: str, *, from_env: bool = False) -> None:
        value = self.coerce(key.kind, raw, where, from_env=from_env)
        if isinstance(value, str) and key.target in _NORMALISED:
            value = value.strip().lower()
        # An unparsable auth config stays marked, so validation does not add "missing config" to it.
        if value is not MISSING or key.kind == "json":
            self.values[key.target] = value

    def coerce(self, kind: Kind, raw: object, where: str, *, from_env: bool) -> object:
        if kind == "json":
            return self.json(raw, where) if isinstance(raw, str) else raw
        if kind == "bool" and from_env and isinstance(raw, str):
            return _env_bool(raw)
        value = _typed(kind, raw)
        if value is None:
            self.problems.append(f"{where} must be {_NOUNS[kind]}, got {str(raw)[:40]!r}")
            return MISSING
        return value

    def json(self, text: object, where: str) -> object:
        try:
            return json.loads(str(text))
        except ValueError:
            # The text may hold a secret (an auth config): name the source, never echo it.
            self.problems.append(f"{where} is not valid JSON")
            return MISSING


def _typed(kind: Kind, raw: object) -> object:
    """`raw` as `kind`, or None. bool is an int subclass, but `port: true` is a mistake, not 1."""
    if kind in ("str", "bool") or isinstance(raw, bool):
        return raw if type(raw) is _TYPES.get(kind) else None
    number = int if kind == "int" else float
    if isinstance(raw, str):
        try:
            return number(raw.strip())
        except ValueError:
            return None
    if isinstance(raw, int) or (kind == "float" and isinstance(raw, float)):
        return number(raw)
    return None


def _env_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "1")
