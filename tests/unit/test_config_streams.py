"""The stream limits and the TLS files are read from the environment and checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeq.config import load_settings
from codeq.config.load import ConfigError


def test_stream_limits_and_tls_files_are_read_from_the_environment(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("-")
    s = load_settings(
        environ={
            "GRPC_MAX_IN_FLIGHT": "8",
            "GRPC_MAX_READY_COUNT": "9",
            "GRPC_READY_WAIT_SECONDS": "10",
            "TLS_CERT_FILE": str(tmp_path / "cert.pem"),
            "TLS_KEY_FILE": str(tmp_path / "key.pem"),
            "TLS_CLIENT_CA_FILE": str(tmp_path / "ca.pem"),
        },
        overrides={"dev": True},
    )
    assert (s.grpc.max_in_flight, s.grpc.max_ready_count, s.grpc.ready_wait_seconds) == (8, 9, 10)
    assert s.tls.cert_file.endswith("cert.pem") and s.tls.client_ca_file.endswith("ca.pem")


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"GRPC_MAX_READY_COUNT": "0"}, "grpcMaxReadyCount must be at least 1, got 0"),
        ({"GRPC_MAX_IN_FLIGHT": "0"}, "grpcMaxInFlight must be at least 1, got 0"),
        ({"TLS_CERT_FILE": "/dev/null"}, "tlsCertFile and tlsKeyFile must be set together"),
        ({"TLS_CLIENT_CA_FILE": "/dev/null"}, "tlsClientCaFile needs tlsCertFile and tlsKeyFile"),
        (
            {"TLS_CERT_FILE": "/nonexistent/c", "TLS_KEY_FILE": "/dev/null"},
            "tlsCertFile: cannot read /nonexistent/c",
        ),
    ],
)
def test_bad_stream_and_tls_settings_are_refused(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert problem in str(caught.value)
