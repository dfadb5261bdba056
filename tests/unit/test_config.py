"""Settings: precedence of the sources, the reference's key names, and whole-tree validation."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from codeq.config import ConfigError, Settings, load_settings

STATIC_AUTH = {
    "PRODUCER_AUTH_PROVIDER": "static",
    "PRODUCER_AUTH_CONFIG": json.dumps({"token": "p-token", "subject": "acme"}),
    "WORKER_AUTH_PROVIDER": "static",
    "WORKER_AUTH_CONFIG": json.dumps({"token": "w-token", "subject": "acme", "eventTypes": ["*"]}),
    # Several tests below set a non-dev env; static tokens there need the explicit opt-in.
    "ALLOW_STATIC_TOKENS": "true",
}


def load(env: dict[str, str] | None = None, path: Path | None = None, **overrides: Any) -> Settings:
    return load_settings(
        config_path=None if path is None else str(path),
        environ={**STATIC_AUTH, **(env or {})},
        overrides=overrides,
    )


def problems(env: dict[str, str] | None = None, path: Path | None = None, **overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(env, path, **overrides)
    return caught.value.problems


def yaml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codeq.yml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load()
    assert (s.http.host, s.http.port, s.env, s.timezone, s.log.level, s.log.format) == (
        "0.0.0.0",
        8080,
        "dev",
        "UTC",
        "info",
        "text",
    )
    assert s.store.provider == "embedded" and s.store.path == "./data"
    assert s.store.fsync_on_commit and s.store.num_shards == 1
    assert s.store.max_pending_bytes == 64 * 1024 * 1024
    assert (s.tasks.backoff.policy, s.tasks.backoff.base_seconds, s.tasks.backoff.max_seconds) == (
        "exp_full_jitter",
        5,
        900,
    )
    assert s.limits.max_body_bytes == 1024 * 1024 and s.limits.max_payload_bytes == 512 * 1024
    assert s.tasks.default_lease_seconds == 300 and s.tasks.max_attempts_default == 5 and not s.dev
    assert s.auth.producer.provider == "static" and s.auth.producer.config == {
        "token": "p-token",
        "subject": "acme",
    }


def test_flags_beat_environment_beat_yaml(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "port: 1001\nhost: yaml-host\nlogLevel: debug\n")
    assert load(path=path).http.port == 1001
    assert load({"PORT": "1002"}, path).http.port == 1002
    s = load({"PORT": "1002", "HOST": "env-host"}, path, port=1003)
    assert (s.http.port, s.http.host, s.log.level) == (1003, "env-host", "debug")


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "port: 7000\n")
    assert load({"CODEQ_CONFIG_PATH": str(path)}).http.port == 7000


def test_yaml_uses_the_reference_camel_case_keys(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
env: Staging
timezone: America/Sao_Paulo
logFormat: json
persistenceProvider: pebble
persistenceConfig: {path: /var/lib/codeq, fsyncOnCommit: false, numShards: 4, maxPendingBytes: 1024}
defaultLeaseSeconds: 60
maxAttemptsDefault: 7
backoffPolicy: linear
backoffBaseSeconds: 2
backoffMaxSeconds: 30
idempotencyTtlSeconds: 10
retentionSeconds: 20
allowProducerAsWorker: true
shutdownGraceSeconds: 2.5
limits: {maxBodyBytes: 2048, maxPayloadBytes: 1024, maxClaimBatch: 3}
producerAuthProvider: multi
producerAuthConfig:
  providers:
    - {type: static, config: one}
    - {type: static, config: {token: two}}
""",
    )
    s = load_settings(config_path=str(path), environ={}, overrides={"dev": True, "env": "dev"})
    assert s.timezone == "America/Sao_Paulo" and s.log.format == "json"
    assert s.store.provider == "pebble" and s.store.path == "/var/lib/codeq"
    assert not s.store.fsync_on_commit and s.store.num_shards == 4
    assert s.store.max_pending_bytes == 1024
    assert (s.tasks.default_lease_seconds, s.tasks.max_attempts_default) == (60, 7)
    assert (s.tasks.backoff.policy, s.tasks.backoff.base_seconds, s.tasks.backoff.max_seconds) == (
        "linear",
        2,
        30,
    )
    assert (s.retention.idempotency_ttl_seconds, s.retention.seconds) == (10, 20)
    assert s.auth.allow_producer_as_worker and s.shutdown_grace_seconds == 2.5
    assert (s.limits.max_body_bytes, s.limits.max_payload_bytes, s.limits.max_claim_batch) == (2048, 1024, 3)
    assert s.limits.max_batch_size == 100
    assert s.auth.producer.provider == "multi" and s.auth.worker.provider == ""


def test_yaml_env_key_is_normalised_once(tmp_path: Path) -> None:
    assert load(path=yaml_file(tmp_path, "env: '  Staging '\n")).env == "staging"
    assert load({"ENV": " PROD"}).env == "prod"


def test_persistence_config_may_be_a_json_string_in_yaml(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, """persistenceConfig: '{"path": "/srv/q", "numShards": 2}'\n""")
    s = load(path=path)
    assert s.store.path == "/srv/q" and s.store.num_shards == 2


def test_persistence_config_env_json_overrides_yaml_key_by_key(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "persistenceConfig: {path: /from-yaml, numShards: 8}\n")
    s = load({"PERSISTENCE_CONFIG": '{"path": "/from-env"}'}, path)
    assert s.store.path == "/from-env" and s.store.num_shards == 8


def test_environment_names(tmp_path: Path) -> None:
    env = {
        "TIMEZONE": "Europe/Lisbon",
        "LOG_LEVEL": "WARN",
        "LOG_FORMAT": "json",
        "PERSISTENCE_PROVIDER": "memory",
        "DEFAULT_LEASE_SECONDS": "45",
        "MAX_ATTEMPTS_DEFAULT": " 9 ",
        "BACKOFF_POLICY": "fixed",
        "BACKOFF_BASE_SECONDS": "3",
        "BACKOFF_MAX_SECONDS": "4",
        "IDEMPOTENCY_TTL_SECONDS": "11",
        "RETENTION_SECONDS": "12",
        "LIMITS_MAX_BATCH_SIZE": "50",
    }
    s = load(env)
    assert (s.timezone, s.log.level, s.log.format, s.store.provider) == (
        "Europe/Lisbon",
        "warn",
        "json",
        "memory",
    )
    assert (s.tasks.default_lease_seconds, s.tasks.max_attempts_default) == (45, 9)
    assert (s.tasks.backoff.policy, s.tasks.backoff.base_seconds, s.tasks.backoff.max_seconds) == (
        "fixed",
        3,
        4,
    )
    assert (s.retention.idempotency_ttl_seconds, s.retention.seconds, s.limits.max_batch_size) == (11, 12, 50)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("on", False),
    ],
)
def test_environment_booleans(text: str, expected: bool) -> None:
    assert load({"ALLOW_PRODUCER_AS_WORKER": text}).auth.allow_producer_as_worker is expected


def test_empty_environment_values_count_as_unset() -> None:
    s = load({"PORT": "", "PERSISTENCE_CONFIG": "", "LOG_LEVEL": ""})
    assert s.http.port == 8080 and s.log.level == "info"


def test_flag_overrides_use_field_names() -> None:
    s = load(
        data_path="/tmp/q", num_shards=3, dev=True, fsync_on_commit=False, provider="memory", host="127.0.0.1"
    )
    assert s.store.path == "/tmp/q" and s.store.num_shards == 3 and s.dev
    assert not s.store.fsync_on_commit and s.store.provider == "memory" and s.http.host == "127.0.0.1"


def test_every_problem_is_reported_together() -> None:
    env = {
        "PORT": "eighty",
        "TIMEZONE": "Mars/Olympus_Mons",
        "LOG_LEVEL": "loud",
        "LOG_FORMAT": "xml",
        "PERSISTENCE_PROVIDER": "redis",
        "PERSISTENCE_CONFIG": '{"numShards": 300, "nope": 1}',
        "BACKOFF_POLICY": "random",
        "DEFAULT_LEASE_SECONDS": "100000",
        "PRODUCER_AUTH_CONFIG": "{not json",
        "WORKER_AUTH_PROVIDER": "jwks",
    }
    found = problems(env)
    expected = [
        "PORT must be an integer",
        "timezone 'Mars/Olympus_Mons' is not a known IANA time zone",
        "logLevel must be one of",
        "logFormat must be json or text",
        "persistenceProvider must be one of embedded, pebble, memory, got 'redis'",
        "persistenceConfig.numShards must be between 1 and 256, got 300",
        "PERSISTENCE_CONFIG: unknown key 'nope'",
        "backoffPolicy must be one of",
        "defaultLeaseSeconds must not exceed limits.maxLeaseSeconds",
        "PRODUCER_AUTH_CONFIG is not valid JSON",
        "workerAuthProvider: jwks auth: jwksUrl is required",
    ]
    for text in expected:
        assert any(text in problem for problem in found), (text, found)
    assert len(found) == len(expected), found


def test_config_error_message_joins_the_problems() -> None:
    error = ConfigError(["a is wrong", "b is wrong"])
    assert str(error) == "invalid config: a is wrong; b is wrong" and error.problems == [
        "a is wrong",
        "b is wrong",
    ]


def test_secrets_in_unparsable_json_are_not_echoed() -> None:
    [problem] = problems({"PRODUCER_AUTH_CONFIG": '{"token": "s3cret"'})
    assert "s3cret" not in problem


def test_a_server_nobody_can_call_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={})
    assert caught.value.problems == [
        "no producer authentication configured: "
        "set PRODUCER_AUTH_PROVIDER/PRODUCER_AUTH_CONFIG or run with --dev",
        "no worker authentication configured: set WORKER_AUTH_PROVIDER/WORKER_AUTH_CONFIG or run with --dev",
    ]
    assert load_settings(environ={}, overrides={"dev": True}).dev


def test_auth_configs_are_built_while_validating() -> None:
    found = problems(
        {
            "PRODUCER_AUTH_CONFIG": json.dumps({"subject": "x"}),
            "WORKER_AUTH_PROVIDER": "multi",
            "WORKER_AUTH_CONFIG": json.dumps({"providers": [{"type": "static", "config": "a"}]}),
        }
    )
    assert found == [
        "producerAuthProvider: static auth: token is required",
        "workerAuthProvider: multi auth: providers must contain between 2 and 4 entries",
    ]


def test_auth_config_without_a_provider_is_a_problem() -> None:
    found = problems({"WORKER_AUTH_PROVIDER": ""}, dev=True)
    assert found == ["workerAuthConfig is set but workerAuthProvider is empty"]


def test_unknown_auth_provider() -> None:
    assert problems({"PRODUCER_AUTH_PROVIDER": "ldap"}) == [
        "producerAuthProvider: unknown auth provider type: ldap"
    ]


def test_dev_tokens_need_a_dev_environment() -> None:
    assert problems({"ENV": "production"}, dev=True) == [
        "--dev (the public dev tokens) requires env dev, got 'production'"
    ]


def test_static_tokens_outside_dev_need_the_opt_in() -> None:
    refused = problems({"ENV": "production", "ALLOW_STATIC_TOKENS": "false"})
    assert refused == [
        "producerAuthProvider uses static tokens: without --dev they need allowStaticTokens: true",
        "workerAuthProvider uses static tokens: without --dev they need allowStaticTokens: true",
    ]
    # A static token inside a composite counts as well.
    multi = {"providers": [{"type": "static", "config": "a"}, {"type": "static", "config": "b"}]}
    env = {"ENV": "prod", "ALLOW_STATIC_TOKENS": "", "WORKER_AUTH_PROVIDER": "multi"}
    found = problems({**env, "WORKER_AUTH_CONFIG": json.dumps(multi)})
    assert any(p.startswith("workerAuthProvider uses static tokens") for p in found), found
    assert load({"ENV": "production"}).auth.allow_static_tokens  # with the opt-in it starts
    # The default env (dev) no longer allows them silently: only --dev does (issue 17 item 5).
    assert any("allowStaticTokens" in p for p in problems({"ALLOW_STATIC_TOKENS": ""}))
    dev = load_settings(environ={**STATIC_AUTH, "ALLOW_STATIC_TOKENS": ""}, overrides={"dev": True})
    assert not dev.auth.allow_static_tokens  # --dev needs none


def test_role_header_only_in_dev() -> None:
    assert load({"ALLOW_INSECURE_ROLE_HEADER": "true"}).auth.allow_insecure_role_header
    assert problems({"ENV": "prod", "ALLOW_INSECURE_ROLE_HEADER": "true"}) == [
        "allowInsecureRoleHeader requires env dev, got 'prod'"
    ]


def test_ranges_and_positive_numbers() -> None:
    env = {
        "PORT": "70000",
        "BACKOFF_BASE_SECONDS": "0",
        "LIMITS_MAX_BODY_BYTES": "100",
        "RETENTION_SECONDS": "-1",
    }
    found = problems(env, num_shards=0)
    assert "port must be between 0 and 65535, got 70000" in found
    assert "backoffBaseSeconds must be positive, got 0" in found
    assert "retentionSeconds must be positive, got -1" in found
    assert "persistenceConfig.numShards must be between 1 and 256, got 0" in found
    assert "limits.maxPayloadBytes must not exceed limits.maxBodyBytes" in found


def test_missing_config_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"
    assert problems(path=path) == [f"config file {path} does not exist"]


def test_malformed_yaml_is_a_problem(tmp_path: Path) -> None:
    [problem] = problems(path=yaml_file(tmp_path, "port: [1,\n"))
    assert problem.startswith("config file") and "cannot be read" in problem
    assert problems(path=yaml_file(tmp_path, "- a\n- b\n")) == [
        f"config file {tmp_path / 'codeq.yml'} must contain a mapping"
    ]


def test_yaml_types_are_checked(tmp_path: Path) -> None:
    text = (
        "port: true\nfsync: 1\nhost: 12\nallowProducerAsWorker: 'maybe'\nlimits: 5\npersistenceConfig: [1]\n"
    )
    found = problems(path=yaml_file(tmp_path, text))
    assert found == [
        "port must be an integer, got 'True'",
        "host must be a string, got '12'",
        "allowProducerAsWorker must be true or false, got 'maybe'",
        "persistenceConfig must be a mapping",
        "limits must be a mapping",
    ]


def test_unused_yaml_keys_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="codeq.config"):
        load(path=yaml_file(tmp_path, "redisAddr: localhost:6379\nport: 1\n"))
    assert "config file keys not used by codeq: redisAddr" in caplog.text


def test_unsupported_modes_are_refused() -> None:
    assert problems({"CLUSTER_ENABLED": "true"}) == [
        "cluster.enabled: the legacy cluster mode is not supported"
    ]


def test_unknown_override_is_a_problem() -> None:
    assert problems(colour="blue") == ["unknown override 'colour'"]


# -- gRPC streams ----------------------------------------------------------------------------


def test_streams_are_off_by_default_with_a_4_mib_message_limit() -> None:
    s = load()
    assert (s.grpc.producer_stream_addr, s.grpc.worker_stream_addr) == ("", "")
    assert s.grpc.max_message_bytes == 4 * 1024 * 1024


def test_stream_keys_from_every_source(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        "producerStreamAddr: ':9092'\nworkerStreamAddr: 0.0.0.0:9091\ngrpcMaxMessageBytes: 8388608\n",
    )
    s = load(path=path)
    assert (s.grpc.producer_stream_addr, s.grpc.worker_stream_addr, s.grpc.max_message_bytes) == (
        ":9092",
        "0.0.0.0:9091",
        8 << 20,
    )
    env = {
        "PRODUCER_STREAM_ADDR": "127.0.0.1:7001",
        "WORKER_STREAM_ADDR": "[::1]:7002",
        "GRPC_MAX_MESSAGE_BYTES": "1048576",
    }
    s = load(env, path)
    assert (s.grpc.producer_stream_addr, s.grpc.worker_stream_addr, s.grpc.max_message_bytes) == (
        "127.0.0.1:7001",
        "[::1]:7002",
        1 << 20,
    )
    s = load(env, path, producer_stream_addr="localhost:7003", worker_stream_addr="localhost:0")
    assert (s.grpc.producer_stream_addr, s.grpc.worker_stream_addr) == ("localhost:7003", "localhost:0")


@pytest.mark.parametrize("address", ["9092", "host:", "host:port", "host:70000", "[::1:9092", "a b:1"])
def test_malformed_stream_addresses_are_problems(address: str) -> None:
    assert problems(producer_stream_addr=address) == [
        f"producerStreamAddr must look like host:port, got {address!r}"
    ]
    assert problems({"WORKER_STREAM_ADDR": address}) == [
        f"workerStreamAddr must look like host:port, got {address!r}"
    ]


def test_grpc_message_limit_must_hold_a_payload() -> None:
    assert problems({"GRPC_MAX_MESSAGE_BYTES": "1000"}) == [
        f"grpcMaxMessageBytes must be between limits.maxPayloadBytes and {2**31 - 1}, got 1000"
    ]
    assert problems({"GRPC_MAX_MESSAGE_BYTES": str(2**31)})[0].startswith(
        "grpcMaxMessageBytes must be between"
    )
    assert problems({"GRPC_MAX_MESSAGE_BYTES": "big"}) == [
        "GRPC_MAX_MESSAGE_BYTES must be an integer, got 'big'"
    ]


def test_rate_limit_section(tmp_path: Path) -> None:
    text = """
rateLimit:
  keyBy: tenant
  producer: {requestsPerMinute: 120, burstSize: 10}
  admin: {requestsPerMinute: 1, burstSize: 1}
"""
    r = load(path=yaml_file(tmp_path, text)).rate_limit
    assert (r.key_by, r.producer_requests_per_minute, r.producer_burst_size) == ("tenant", 120, 10)
    assert (r.admin_requests_per_minute, r.worker_requests_per_minute) == (1, 0)
    assert load({"RATE_LIMIT_WORKER_BURST_SIZE": "3"}).rate_limit.worker_burst_size == 3
    webhook = load(path=yaml_file(tmp_path, "rateLimit:\n  webhook: {requestsPerMinute: 6, burstSize: 2}\n"))
    assert (webhook.rate_limit.webhook_requests_per_minute, webhook.rate_limit.webhook_burst_size) == (6, 2)
    bad = "rateLimit:\n  keyBy: token\n  webhooks: {burstSize: 1}\n  worker: {burstSize: -1, rpm: 2}\n"
    assert problems(path=yaml_file(tmp_path, bad)) == [
        "rateLimit: unknown key 'webhooks'",
        "rateLimit.worker: unknown key 'rpm'",
        "rateLimit.worker.burstSize must not be negative",
        "rateLimit.keyBy must be one of tenant_subject, tenant, subject, got 'token'",
    ]


def test_reference_jwks_shortcuts() -> None:
    env = {
        "PRODUCER_AUTH_PROVIDER": "",
        "PRODUCER_AUTH_CONFIG": "",
        "WORKER_AUTH_PROVIDER": "",
        "WORKER_AUTH_CONFIG": "",
        "IDENTITY_JWKS_URL": "https://id.example/jwks.json",
        "IDENTITY_ISSUER": "https://id.example",
        "IDENTITY_AUDIENCE": "codeq",
        "WORKER_JWKS_URL": "https://id.example/jwks.json",
        "WORKER_ISSUER": "https://id.example",
        "ALLOWED_CLOCK_SKEW_SECONDS": "5",
    }
    s = load(env)
    assert s.auth.producer.provider == "jwks" and s.auth.producer.config == {
        "jwksUrl": "https://id.example/jwks.json",
        "issuer": "https://id.example",
        "audience": "codeq",
        "clockSkew": 5_000_000_000,
    }
    assert s.auth.worker.provider == "jwks" and s.auth.worker.config["audience"] == "codeq-worker"  # type: ignore[index]
    # An explicit provider wins over the shortcut.
    assert (
        load({**env, "WORKER_AUTH_PROVIDER": "static", "WORKER_AUTH_CONFIG": '"t"'}).auth.worker.provider
        == "static"
    )
    found = problems({**env, "IDENTITY_AUDIENCE": ""})
    assert found == [
        "producerAuthProvider: jwks auth: audience is required "
        "(from identityJwksUrl: set IDENTITY_ISSUER and IDENTITY_AUDIENCE too)"
    ]


def test_stream_limits_before_authentication_are_configurable_and_checked() -> None:
    grpc = load(
        {
            "GRPC_HELLO_TIMEOUT_SECONDS": "1.5",
            "GRPC_MAX_UNAUTHENTICATED_STREAMS": "4",
            "GRPC_MAX_CONCURRENT_STREAMS": "50",
        }
    ).grpc
    assert (grpc.hello_timeout_seconds, grpc.max_unauthenticated_streams, grpc.max_concurrent_streams) == (
        1.5,
        4,
        50,
    )
    assert load().grpc.hello_timeout_seconds == 10.0
    found = problems({"GRPC_HELLO_TIMEOUT_SECONDS": "0", "GRPC_MAX_CONCURRENT_STREAMS": "0"})
    assert any(p.startswith("grpcHelloTimeoutSeconds must be > 0") for p in found)
    assert any(p.startswith("grpcMaxConcurrentStreams must be at least 1") for p in found)


def test_unused_environment_names_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "CODEQ_TYPO": "1",
        "LOCAL_ARTIFACTS_DIR": "/tmp/a",
        "CODEQ_BASE_URL": "x",
        "CODEQ_EMPTY": "",
        "HOME": "/",
    }
    with caplog.at_level(logging.WARNING, logger="codeq.config"):
        load(env)
    [warning] = [r.getMessage() for r in caplog.records if "environment variables" in r.getMessage()]
    assert warning.endswith(": CODEQ_TYPO, LOCAL_ARTIFACTS_DIR")


def test_unsigned_webhooks_warn_outside_dev_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="codeq.config"):
        load_settings(environ={}, overrides={"dev": True})
        assert not [r for r in caplog.records if "webhookHmacSecret" in r.getMessage()]
        load()
        assert [r for r in caplog.records if "webhookHmacSecret" in r.getMessage()]
        caplog.clear()
        load({"WEBHOOK_HMAC_SECRET": "s"})
        assert not [r for r in caplog.records if "webhookHmacSecret" in r.getMessage()]
    refused = problems({"REQUIRE_SIGNED_WEBHOOKS": "true"})
    assert any(p.startswith("requireSignedWebhooks") for p in refused)
    assert load({"REQUIRE_SIGNED_WEBHOOKS": "true", "WEBHOOK_HMAC_SECRET": "s"}).webhooks.require_signed


def test_observability_keys_and_their_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "METRICS_ADDR": "127.0.0.1:9100",
        "METRICS_TENANT_LABELS": "true",
        "METRICS_MAX_SERIES": "50",
        "ACCESS_LOG": "true",
        "TRACING_ENABLED": "true",
        "TRACING_OTLP_ENDPOINT": "http://collector:4318",
        "TRACING_SAMPLE_RATIO": "0.25",
        "SERVICE_NAME": "queue",
    }
    o = load(env).observability
    assert (o.metrics_addr, o.metrics_tenant_labels, o.metrics_max_series, o.access_log) == (
        "127.0.0.1:9100", True, 50, True,
    )  # fmt: skip
    assert (o.tracing_enabled, o.tracing_otlp_endpoint, o.tracing_sample_ratio, o.service_name) == (
        True, "http://collector:4318", 0.25, "queue",
    )  # fmt: skip
    assert load().observability.metrics_addr == "" and not load().observability.tracing_enabled
    found = problems({"METRICS_ADDR": "nine", "METRICS_MAX_SERIES": "3", "TRACING_SAMPLE_RATIO": "1.5"})
    assert found == [
        "metricsAddr must look like host:port, got 'nine'",
        "metricsMaxSeries must be at least 10, got 3",
        "tracingSampleRatio must be between 0 and 1, got 1.5",
    ]


def test_tracing_without_the_otel_packages_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without_otel(name: str, *args: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ModuleNotFoundError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_otel)
    assert problems({"TRACING_ENABLED": "true"}) == [
        "tracingEnabled needs the OpenTelemetry packages: install codeq with the 'otel' extra"
    ]
    assert not load().observability.tracing_enabled  # off, the packages are not needed
