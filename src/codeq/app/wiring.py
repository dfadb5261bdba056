"""Each component's own settings object, made from its section of the settings tree."""

from __future__ import annotations

from codeq.config import (
    HttpSettings,
    LimitSettings,
    RateLimitSettings,
    RetentionSettings,
    Settings,
    StoreSettings,
    SubscriptionSettings,
    TaskDefaults,
    WebhookSettings,
)
from codeq.core.clock import Clock
from codeq.engine.engine import EngineConfig
from codeq.kv.budget import MemoryBudget
from codeq.observability.metrics import Metrics
from codeq.service import subscriptions, webhooks
from codeq.service.policy import Policy
from codeq.service.ratelimit import ADMIN, PRODUCER, WORKER, BucketPolicy, RateLimiter
from codeq.transport.http.limits import HttpServerLimits

_MS = 1000


def policy(defaults: TaskDefaults, limits: LimitSettings) -> Policy:
    return Policy(
        default_lease_seconds=defaults.default_lease_seconds,
        max_attempts_default=defaults.max_attempts_default,
        max_lease_seconds=limits.max_lease_seconds,
        max_delay_seconds=limits.max_delay_seconds,
        backoff_max_seconds=defaults.backoff.max_seconds,
        max_attempts=limits.max_attempts,
        max_payload_bytes=limits.max_payload_bytes,
        max_batch_size=limits.max_batch_size,
        max_claim_batch=limits.max_claim_batch,
        max_claim_wait_seconds=limits.max_claim_wait_seconds,
        max_result_wait_seconds=limits.max_result_wait_seconds,
    )


def http_server_limits(http: HttpSettings) -> HttpServerLimits:
    return HttpServerLimits(
        max_head_bytes=http.max_head_bytes,
        max_headers=http.max_headers,
        head_timeout_seconds=http.head_timeout_seconds,
        body_timeout_seconds=http.body_timeout_seconds,
        idle_timeout_seconds=http.idle_timeout_seconds,
        max_connections=http.max_connections,
    )


def engine_config(settings: Settings) -> EngineConfig:
    """The engine keeps times in ms; the settings, like the reference's keys, in seconds."""
    retention: RetentionSettings = settings.retention
    return EngineConfig(
        backoff=settings.tasks.backoff,
        retention_ms=retention.seconds * _MS,
        idempotency_ttl_ms=retention.idempotency_ttl_seconds * _MS,
        retention_completed_ms=retention.completed_seconds * _MS,
        retention_failed_ms=retention.failed_seconds * _MS,
        retention_dead_lettered_ms=retention.dead_lettered_seconds * _MS,
    )


def store_memory(store: StoreSettings) -> MemoryBudget:
    return MemoryBudget(
        block_cache_mb=store.block_cache_mb,
        write_buffer_mb=store.write_buffer_mb,
        max_write_buffers=store.max_write_buffers,
    )


def subscription_settings(s: SubscriptionSettings) -> subscriptions.SubscriptionSettings:
    return subscriptions.SubscriptionSettings(
        default_ttl_seconds=s.default_ttl_seconds,
        max_ttl_seconds=s.max_ttl_seconds,
        default_min_interval_seconds=s.min_interval_seconds,
    )


def callback_settings(s: WebhookSettings) -> webhooks.CallbackSettings:
    return webhooks.CallbackSettings(
        secret=s.hmac_secret,
        per_tenant=s.signature_per_tenant,
        max_attempts=s.result_max_attempts,
        base_backoff_seconds=s.result_base_backoff_seconds,
        max_backoff_seconds=s.result_max_backoff_seconds,
    )


def rate_limiter(r: RateLimitSettings, clock: Clock, metrics: Metrics) -> RateLimiter:
    policies = {
        PRODUCER: BucketPolicy(r.producer_requests_per_minute, r.producer_burst_size),
        WORKER: BucketPolicy(r.worker_requests_per_minute, r.worker_burst_size),
        ADMIN: BucketPolicy(r.admin_requests_per_minute, r.admin_burst_size),
    }

    def on_hit(scope: str, operation: str) -> None:
        metrics.rate_limit_hits.labels(scope, operation).inc()

    return RateLimiter(policies, clock, r.key_by, on_hit)


def outbound_policy(r: RateLimitSettings) -> BucketPolicy:
    """`rateLimit.webhook`: one bucket per callback URL, shared by callbacks and notifications."""
    return BucketPolicy(r.webhook_requests_per_minute, r.webhook_burst_size)
