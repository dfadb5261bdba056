"""The settings tree: loaded once (flags > environment > YAML file > defaults) and validated once."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from codeq.auth.static import build_validator
from codeq.config_raft import RaftSettings
from codeq.config_raft import check as check_raft
from codeq.config_raft import from_env as raft_from_env
from codeq.config_raft import from_yaml as raft_from_yaml
from codeq.core.backoff import POLICIES, BackoffPolicy

log = logging.getLogger("codeq.config")

KiB = 1024
MiB = 1024 * KiB
_INT32_MAX = 2**31 - 1

PERSISTENCE_PROVIDERS = ("embedded", "pebble", "memory")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
LOG_FORMATS = ("json", "text")


class ConfigError(Exception):
    """Every problem found in the configuration, reported together."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid config: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class PersistenceSettings:
    provider: str = "embedded"
    path: str = "./data"
    fsync_on_commit: bool = True
    num_shards: int = 1
    max_pending_bytes: int = 64 * MiB  # bound on the bytes merged into one group commit


@dataclass(frozen=True, slots=True)
class AuthProviderSettings:
    provider: str = ""  # "" = not configured
    config: object = None  # the parsed JSON document handed to the validator factory


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_body_bytes: int = 1 * MiB
    max_payload_bytes: int = 512 * KiB
    max_lease_seconds: int = 86_400
    max_delay_seconds: int = 31_536_000
    max_attempts: int = 1000
    max_batch_size: int = 100
    max_claim_batch: int = 10
    max_claim_wait_seconds: int = 30
    max_result_wait_seconds: int = 60


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """`rateLimit.<scope>.{requestsPerMinute,burstSize}`: a bucket is on when both are > 0."""

    producer_requests_per_minute: int = 0
    producer_burst_size: int = 0
    worker_requests_per_minute: int = 0
    worker_burst_size: int = 0
    admin_requests_per_minute: int = 0
    admin_burst_size: int = 0
    # Outbound callbacks and notifications, one bucket per callback URL (spec 01 §7.3, §9.2).
    webhook_requests_per_minute: int = 0
    webhook_burst_size: int = 0
    key_by: str = "tenant_subject"  # or "tenant", "subject"


RATE_LIMIT_SCOPES = ("producer", "worker", "admin", "webhook")
RATE_LIMIT_KEYS = ("tenant_subject", "tenant", "subject")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    env: str = "dev"
    timezone: str = "UTC"
    log_level: str = "info"
    log_format: str = "text"
    default_lease_seconds: int = 300
    max_attempts_default: int = 5
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    idempotency_ttl_seconds: int = 86_400
    retention_seconds: int = 86_400  # how long finished tasks and their results are kept
    # Per terminal state; 0 means `retention_seconds`. Live tasks are never removed.
    retention_completed_seconds: int = 0
    retention_failed_seconds: int = 0
    retention_dead_lettered_seconds: int = 0
    persistence: PersistenceSettings = field(default_factory=PersistenceSettings)
    producer_auth: AuthProviderSettings = field(default_factory=AuthProviderSettings)
    worker_auth: AuthProviderSettings = field(default_factory=AuthProviderSettings)
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
    dev: bool = False  # enables the documented dev tokens (auth.edge)
    limits: LimitSettings = field(default_factory=LimitSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    shutdown_grace_seconds: float = 10.0
    # gRPC streams (spec 07 §1): "" leaves that stream's server off.
    producer_stream_addr: str = ""
    worker_stream_addr: str = ""
    grpc_max_message_bytes: int = 4 * MiB  # per message, both directions (spec 07 gap 10)
    # Outbound webhooks (spec 01 §7.3, §9): signing, result-callback retries, host lists.
    webhook_hmac_secret: str = ""
    result_webhook_max_attempts: int = 5
    result_webhook_base_backoff_seconds: int = 2
    result_webhook_max_backoff_seconds: int = 60
    webhook_allow_hosts: str = ""  # comma list of names, *.suffix, addresses or CIDRs
    webhook_deny_hosts: str = ""
    backup_root: str = ""  # when set, `POST /admin/backup` writes only below this directory
    # Subscriptions (spec 01 §9): the default throttle (gap 7), TTLs, and the expiry sweep.
    subscription_min_interval_seconds: int = 5
    subscription_cleanup_interval_seconds: int = 60
    subscription_default_ttl_seconds: int = 60
    subscription_max_ttl_seconds: int = 86_400
    raft: RaftSettings = field(default_factory=RaftSettings)


Kind = Literal["str", "int", "bool", "float", "json"]


@dataclass(frozen=True, slots=True)
class _Key:
    target: str  # dotted path into Settings, e.g. "persistence.num_shards"
    yaml: str  # the reference's camelCase name within its YAML mapping
    env: str | None
    kind: Kind


def _camel(snake: str) -> str:
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
        _Key(name, _camel(name), name.upper(), "str")
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
        _Key(f"subscription_{name}", _camel(f"subscription_{name}"), f"SUBSCRIPTION_{name.upper()}", "int")
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
    _Key(f"limits.{f.name}", _camel(f.name), f"LIMITS_{f.name.upper()}", "int") for f in fields(LimitSettings)
)
# `rateLimit: {producer: {requestsPerMinute, burstSize}, ..., keyBy}`; env RATE_LIMIT_<SCOPE>_<KEY>.
_RATE_SCOPES = {
    scope: tuple(
        _Key(
            f"rate_limit.{scope}_{name}",
            _camel(name),
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
_MISSING = object()
_TYPES: dict[str, type] = {"str": str, "bool": bool}
# spec 04 gap 5: names compared later are normalised once, on the way in.
_PROVIDERS = ("persistence.provider", "producer_auth.provider", "worker_auth.provider")
_NORMALISED = frozenset(("env", "log_level", "log_format", *_PROVIDERS))
_NOUNS = {"str": "a string", "bool": "true or false", "int": "an integer", "float": "a number"}


def load_settings(
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read every source, build the tree, and raise `ConfigError` listing all problems at once."""
    env = os.environ if environ is None else environ
    sources = _Sources()
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


class _Sources:
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
        if value is None or value is _MISSING:
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
        if value is not _MISSING or key.kind == "json":
            self.values[key.target] = value

    def coerce(self, kind: Kind, raw: object, where: str, *, from_env: bool) -> object:
        if kind == "json":
            return self.json(raw, where) if isinstance(raw, str) else raw
        if kind == "bool" and from_env and isinstance(raw, str):
            return _env_bool(raw)
        value = _typed(kind, raw)
        if value is None:
            self.problems.append(f"{where} must be {_NOUNS[kind]}, got {str(raw)[:40]!r}")
            return _MISSING
        return value

    def json(self, text: object, where: str) -> object:
        try:
            return json.loads(str(text))
        except ValueError:
            # The text may hold a secret (an auth config): name the source, never echo it.
            self.problems.append(f"{where} is not valid JSON")
            return _MISSING


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


# -- the tree ------------------------------------------------------------------------------


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


# -- validation ----------------------------------------------------------------------------


def validate(settings: Settings) -> list[str]:
    """Every problem with a settings tree; empty when it can be served."""
    return [
        *_check_server(settings),
        *_check_numbers(settings),
        *_check_persistence(settings.persistence),
        *_check_auth(settings),
        *_check_streams(settings),
        *_check_rate_limit(settings.rate_limit),
        *_check_callback_hosts(settings),
        *check_raft(settings.raft, provider=settings.persistence.provider, valid_address=_split_address),
    ]


def _check_callback_hosts(s: Settings) -> list[str]:
    """An entry with a `/` is a CIDR: a typo there must not silently become a host name."""
    problems = []
    for name, entries in (
        ("webhookAllowHosts", s.webhook_allow_hosts),
        ("webhookDenyHosts", s.webhook_deny_hosts),
    ):
        for entry in (e.strip() for e in entries.split(",")):
            if "/" not in entry:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                problems.append(f"{name}: {entry!r} is not a valid CIDR")
    return problems


def _check_rate_limit(r: RateLimitSettings) -> list[str]:
    problems = [
        f"rateLimit.{f.name.split('_', 1)[0]}.{_camel(f.name.split('_', 1)[1])} must not be negative"
        for f in fields(r)
        if f.name != "key_by" and getattr(r, f.name) < 0
    ]
    if r.key_by not in RATE_LIMIT_KEYS:
        problems.append(f"rateLimit.keyBy must be one of {', '.join(RATE_LIMIT_KEYS)}, got {r.key_by!r}")
    return problems


def _check_server(s: Settings) -> list[str]:
    problems = []
    if not 0 <= s.port <= 65535:
        problems.append(f"port must be between 0 and 65535, got {s.port}")
    if not s.env:
        problems.append("env must not be blank")
    if s.log_level not in LOG_LEVELS:
        problems.append(f"logLevel must be one of {', '.join(LOG_LEVELS)}, got {s.log_level!r}")
    if s.log_format not in LOG_FORMATS:
        problems.append(f"logFormat must be json or text, got {s.log_format!r}")
    if not _is_timezone(s.timezone):
        problems.append(f"timezone {s.timezone!r} is not a known IANA time zone")
    if s.shutdown_grace_seconds < 0:
        problems.append("shutdownGraceSeconds must not be negative")
    return problems


def _is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_numbers(s: Settings) -> list[str]:
    limits = s.limits
    problems = [
        f"{name} must be positive, got {value}"
        for name, value in (
            ("defaultLeaseSeconds", s.default_lease_seconds),
            ("maxAttemptsDefault", s.max_attempts_default),
            ("backoffBaseSeconds", s.backoff.base_seconds),
            ("backoffMaxSeconds", s.backoff.max_seconds),
            ("idempotencyTtlSeconds", s.idempotency_ttl_seconds),
            ("retentionSeconds", s.retention_seconds),
            ("resultWebhookMaxAttempts", s.result_webhook_max_attempts),
            ("resultWebhookBaseBackoffSeconds", s.result_webhook_base_backoff_seconds),
            ("resultWebhookMaxBackoffSeconds", s.result_webhook_max_backoff_seconds),
            ("subscriptionCleanupIntervalSeconds", s.subscription_cleanup_interval_seconds),
            ("subscriptionDefaultTtlSeconds", s.subscription_default_ttl_seconds),
            ("subscriptionMaxTtlSeconds", s.subscription_max_ttl_seconds),
            ("persistenceConfig.maxPendingBytes", s.persistence.max_pending_bytes),
            *((f"limits.{_camel(f.name)}", getattr(limits, f.name)) for f in fields(limits)),
        )
        if value <= 0
    ]
    problems += [
        f"{name} must not be negative, got {value}"
        for name, value in (
            ("retentionCompletedSeconds", s.retention_completed_seconds),
            ("retentionFailedSeconds", s.retention_failed_seconds),
            ("retentionDeadLetteredSeconds", s.retention_dead_lettered_seconds),
            ("subscriptionMinIntervalSeconds", s.subscription_min_interval_seconds),
        )
        if value < 0
    ]
    if s.default_lease_seconds > limits.max_lease_seconds:
        problems.append("defaultLeaseSeconds must not exceed limits.maxLeaseSeconds")
    if s.max_attempts_default > limits.max_attempts:
        problems.append("maxAttemptsDefault must not exceed limits.maxAttempts")
    if limits.max_payload_bytes > limits.max_body_bytes:
        problems.append("limits.maxPayloadBytes must not exceed limits.maxBodyBytes")
    if s.backoff.max_seconds < s.backoff.base_seconds:
        problems.append("backoffMaxSeconds must not be less than backoffBaseSeconds")
    if s.backoff.policy not in POLICIES:
        problems.append(f"backoffPolicy must be one of {', '.join(POLICIES)}, got {s.backoff.policy!r}")
    return problems


def _check_persistence(p: PersistenceSettings) -> list[str]:
    # spec 04 gap 1: an unknown provider is refused instead of silently selecting another backend.
    problems = []
    if p.provider not in PERSISTENCE_PROVIDERS:
        problems.append(
            f"persistenceProvider must be one of {', '.join(PERSISTENCE_PROVIDERS)}, got {p.provider!r}"
        )
    if not 1 <= p.num_shards <= 256:
        problems.append(f"persistenceConfig.numShards must be between 1 and 256, got {p.num_shards}")
    if p.provider != "memory" and not p.path.strip():
        problems.append("persistenceConfig.path must not be blank")
    return problems


def _check_auth(s: Settings) -> list[str]:
    problems = []
    sides = (("producer", "PRODUCER", s.producer_auth), ("worker", "WORKER", s.worker_auth))
    for side, upper, auth in sides:
        if auth.config is _MISSING:
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
    if side == "producer" and s.identity_jwks_url and s.producer_auth.provider == "jwks":
        return " (from identityJwksUrl: set IDENTITY_ISSUER and IDENTITY_AUDIENCE too)"
    if side == "worker" and s.worker_jwks_url and s.worker_auth.provider == "jwks":
        return " (from workerJwksUrl: set WORKER_ISSUER and WORKER_AUDIENCE too)"
    return ""


def _check_insecure_auth(s: Settings) -> list[str]:
    if s.env == "dev":
        return []
    problems = [
        f"{side}AuthProvider uses static tokens: env {s.env!r} needs allowStaticTokens: true for them"
        for side, auth in (("producer", s.producer_auth), ("worker", s.worker_auth))
        if uses_static(auth) and not s.allow_static_tokens
    ]
    if s.allow_insecure_role_header:
        problems.append(f"allowInsecureRoleHeader requires env dev, got {s.env!r}")
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
            ("producerStreamAddr", s.producer_stream_addr),
            ("workerStreamAddr", s.worker_stream_addr),
        )
        if address and _split_address(address) is None
    ]
    # A stream must carry at least one task of the largest allowed payload; gRPC takes an int32.
    if not s.limits.max_payload_bytes <= s.grpc_max_message_bytes <= _INT32_MAX:
        problems.append(
            f"grpcMaxMessageBytes must be between limits.maxPayloadBytes and {_INT32_MAX}, "
            f"got {s.grpc_max_message_bytes}"
        )
    return problems
