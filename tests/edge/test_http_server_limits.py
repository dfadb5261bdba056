"""The HTTP limits' defaults, their environment overrides, and the connection cap (no process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeq.app.wiring import http_server_limits
from codeq.config import ConfigError, load_settings
from codeq.transport.http.connections import ConnectionRegistry
from codeq.transport.http.limits import HttpServerLimits
from codeq.transport.http.server import RESERVED_DESCRIPTORS, connection_cap
from tests.unit.test_config import STATIC_AUTH


def limits_from(env: dict[str, str], path: str | None = None) -> HttpServerLimits:
    return http_server_limits(load_settings(config_path=path, environ={**STATIC_AUTH, **env}).http)


def test_defaults_are_the_documented_ones() -> None:
    limits = limits_from({})
    assert limits == HttpServerLimits(
        max_head_bytes=65536,
        max_headers=100,
        head_timeout_seconds=10.0,
        body_timeout_seconds=60.0,
        idle_timeout_seconds=5.0,
        max_connections=10_000,
    )


def test_every_limit_has_an_environment_override() -> None:
    limits = limits_from(
        {
            "HTTP_MAX_HEAD_BYTES": "1024",
            "HTTP_MAX_HEADERS": "7",
            "HTTP_HEAD_TIMEOUT_SECONDS": "0.5",
            "HTTP_BODY_TIMEOUT_SECONDS": "1.5",
            "HTTP_IDLE_TIMEOUT_SECONDS": "2",
            "HTTP_MAX_CONNECTIONS": "300",
        }
    )
    assert limits == HttpServerLimits(1024, 7, 0.5, 1.5, 2.0, 300)


def test_every_limit_has_a_yaml_key_under_http(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "http:\n  maxHeadBytes: 2048\n  maxHeaders: 9\n  headTimeoutSeconds: 3\n"
        "  bodyTimeoutSeconds: 4\n  idleTimeoutSeconds: 1.5\n  maxConnections: 50\n"
    )
    assert limits_from({}, str(path)) == HttpServerLimits(2048, 9, 3.0, 4.0, 1.5, 50)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5"])
def test_a_bad_value_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(ConfigError, match="HTTP_MAX_HEADERS"):
        limits_from({"HTTP_MAX_HEADERS": value})


def test_the_cap_stays_below_the_descriptor_limit() -> None:
    limits = HttpServerLimits(max_connections=10_000)
    assert connection_cap(limits, 1_000_000) == 10_000
    assert connection_cap(limits, 4096) == 4096 - RESERVED_DESCRIPTORS


class FakeConnection:
    def __init__(self) -> None:
        self.aborted = False

    def shutdown(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def check_deadline(self, now: float) -> None:
        pass


def test_at_the_cap_the_longest_quiet_connection_is_evicted_and_busy_ones_never() -> None:
    registry = ConnectionRegistry(cap=3)
    first, second, third = FakeConnection(), FakeConnection(), FakeConnection()
    for conn in (first, second, third):
        assert registry.admit(conn)
    registry.busy(first)
    newcomer = FakeConnection()
    assert registry.admit(newcomer)
    assert second.aborted and not first.aborted  # second was quiet longest; first is busy
    registry.busy(third)
    registry.busy(newcomer)
    assert not registry.admit(FakeConnection())  # all busy: the new one is refused
    assert len(registry) == 3
