"""The settings tree: the frozen dataclasses every part of codeq reads, with their limits' constants."""

from __future__ import annotations

from dataclasses import dataclass, field

from codeq.config_raft import RaftSettings
from codeq.core.backoff import BackoffPolicy

KiB = 1024
MiB = 1024 * KiB

PERSISTENCE_PROVIDERS = ("embedded", "pebble", "memory")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
LOG_FORMATS = ("json", "text")


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
