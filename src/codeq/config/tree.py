"""The settings tree: one frozen section per component that reads it, and the limits' constants."""

from __future__ import annotations

from dataclasses import dataclass, field

from codeq.auth.settings import AuthProviderSettings, AuthSettings
from codeq.config.raft import RaftSettings
from codeq.core.backoff import BackoffPolicy

__all__ = ["AuthProviderSettings", "AuthSettings"]

KiB = 1024
MiB = 1024 * KiB

PERSISTENCE_PROVIDERS = ("embedded", "pebble", "memory")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
LOG_FORMATS = ("json", "text")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "0.0.0.0"
    port: int = 8080
    # Limits every connection meets before its request reaches the app, so before
    # authentication (issue 11, ADR 0006); YAML `http.<camelCase>`, env `HTTP_<UPPER_SNAKE>`.
    max_head_bytes: int = 64 * KiB  # request line + headers; more is 431
    max_headers: int = 100  # more is 431
    head_timeout_seconds: float = 10.0  # from connect (or a head's first byte) to the head's end
    body_timeout_seconds: float = 60.0  # from the end of the head to the end of the body
    idle_timeout_seconds: float = 5.0  # a keep-alive connection with no request is closed
    max_connections: int = 10_000  # and never more than the descriptor limit allows


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """The gRPC streams (spec 07 §1): "" leaves that stream's server off."""

    producer_stream_addr: str = ""
    worker_stream_addr: str = ""
    max_message_bytes: int = 4 * MiB  # per message, both directions (spec 07 gap 10)
    # Before authentication (issue 11): a stream must send a valid Hello within this deadline;
    # one connection may hold this many streams still waiting for theirs, and this many streams.
    hello_timeout_seconds: float = 10.0
    max_unauthenticated_streams: int = 16
    max_concurrent_streams: int = 100
    # Per stream (spec 07 gaps 1-3): events handled at once, tasks one Ready may ask for, and
    # how long a Ready that names no wait waits for a task.
    max_in_flight: int = 256
    max_ready_count: int = 256
    ready_wait_seconds: int = 30


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS for the HTTP listener and both stream listeners; no certificate serves plaintext."""

    cert_file: str = ""  # PEM certificate chain
    key_file: str = ""  # PEM private key of that certificate
    client_ca_file: str = ""  # when set, clients must present a certificate this CA signed


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """`persistenceProvider` and `persistenceConfig`."""

    provider: str = "embedded"
    path: str = "./data"
    fsync_on_commit: bool = True
    num_shards: int = 1
    # With num_shards > 1: one process per shard under a supervisor (ADR 0009). None (unset)
    # means yes; False keeps every shard in one process (`runs_shard_processes`).
    shard_processes: bool | None = None
    max_pending_bytes: int = 64 * MiB  # bound on the bytes merged into one group commit
    # RocksDB's memory per shard store (kv/budget.py): block cache (which also holds the
    # index and filter blocks) plus memtables; bounds it whatever the store's size (issue 18).
    block_cache_mb: int = 64
    write_buffer_mb: int = 16
    max_write_buffers: int = 2

    @property
    def runs_shard_processes(self) -> bool:
        """Whether `codeq serve` runs a process per shard: with numShards > 1 unless opted out."""
        return self.num_shards > 1 and self.shard_processes is not False


@dataclass(frozen=True, slots=True)
class TaskDefaults:
    """What a task gets when its create request does not say."""

    default_lease_seconds: int = 300
    max_attempts_default: int = 5
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long finished tasks (with their results) and idempotency keys are kept."""

    seconds: int = 86_400
    # Per terminal state; 0 means `seconds`. Live tasks are never removed.
    completed_seconds: int = 0
    failed_seconds: int = 0
    dead_lettered_seconds: int = 0
    idempotency_ttl_seconds: int = 86_400


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
class WebhookSettings:
    """Outbound webhooks (spec 01 §7.3, §9): signing, result-callback retries, host lists."""

    hmac_secret: str = ""
    # Opt-in: sign each tenant's webhooks with a key derived for that tenant (service/webhooks.py).
    signature_per_tenant: bool = False
    # Refuse to start when tasks may carry webhooks but nothing signs them (outside --dev).
    require_signed: bool = False
    result_max_attempts: int = 5
    result_base_backoff_seconds: int = 2
    result_max_backoff_seconds: int = 60
    allow_hosts: str = ""  # comma list of names, *.suffix, addresses or CIDRs
    deny_hosts: str = ""


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    """Subscriptions (spec 01 §9): the default throttle (gap 7), TTLs, and the expiry sweep."""

    min_interval_seconds: int = 5
    cleanup_interval_seconds: int = 60
    default_ttl_seconds: int = 60
    max_ttl_seconds: int = 86_400


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """Metrics exposure, the access log and tracing (README "Observability")."""

    metrics_addr: str = ""  # host:port of a separate /metrics listener; "" keeps it on the API port
    metrics_tenant_labels: bool = False  # tenant names in metric labels (queue depth)
    metrics_max_series: int = 1000  # per labelled metric; beyond it, commands fold into "_other"
    access_log: bool = False  # one JSON line per HTTP request on the "codeq.access" logger
    tracing_enabled: bool = False
    tracing_otlp_endpoint: str = ""  # OTLP/HTTP traces URL; "" lets OTEL_EXPORTER_OTLP_* decide
    tracing_sample_ratio: float = 1.0  # of new traces; a sampled parent's decision is kept
    service_name: str = "codeq"


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = "dev"
    dev: bool = False  # enables the documented dev tokens (auth.edge)
    timezone: str = "UTC"  # of the timestamps in answers and callbacks
    shutdown_grace_seconds: float = 10.0
    backup_root: str = ""  # when set, `POST /admin/backup` writes only below this directory
    http: HttpSettings = field(default_factory=HttpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    tasks: TaskDefaults = field(default_factory=TaskDefaults)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    subscriptions: SubscriptionSettings = field(default_factory=SubscriptionSettings)
    raft: RaftSettings = field(default_factory=RaftSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
