"""The settings: one tree of frozen sections, loaded from flags > environment > YAML > defaults."""

from codeq.auth.settings import AuthProviderSettings, AuthSettings
from codeq.config.checks import uses_static, validate
from codeq.config.keys import KeyName, key_table
from codeq.config.load import ConfigError, load_settings
from codeq.config.raft import RaftSettings
from codeq.config.tree import (
    LOG_FORMATS,
    LOG_LEVELS,
    PERSISTENCE_PROVIDERS,
    RATE_LIMIT_KEYS,
    RATE_LIMIT_SCOPES,
    GrpcSettings,
    HttpSettings,
    KiB,
    LimitSettings,
    LogSettings,
    MiB,
    RateLimitSettings,
    RetentionSettings,
    Settings,
    StoreSettings,
    SubscriptionSettings,
    TaskDefaults,
    WebhookSettings,
)

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PERSISTENCE_PROVIDERS",
    "RATE_LIMIT_KEYS",
    "RATE_LIMIT_SCOPES",
    "AuthProviderSettings",
    "AuthSettings",
    "ConfigError",
    "GrpcSettings",
    "HttpSettings",
    "KeyName",
    "KiB",
    "LimitSettings",
    "LogSettings",
    "MiB",
    "RaftSettings",
    "RateLimitSettings",
    "RetentionSettings",
    "Settings",
    "StoreSettings",
    "SubscriptionSettings",
    "TaskDefaults",
    "WebhookSettings",
    "key_table",
    "load_settings",
    "uses_static",
    "validate",
]
