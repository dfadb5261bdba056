"""TLS on the HTTP listener and both stream listeners of a real `codeq serve`, through the SDK."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeq.client import ConnectionFailed, Producer, Worker
from tests.support.certs import Certs, make_certs
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


WAIT = 10.0  # how long a test waits on a socket before calling the deadline missed


def tls_server(tmp_path: Path, certs: Certs, *, client_ca: bool) -> ServerProcess:
    env = {
        "HTTP_HEAD_TIMEOUT_SECONDS": "0.5",
        "TLS_CERT_FILE": str(certs.server_cert),
        "TLS_KEY_FILE": str(certs.server_key),
        "PRODUCER_STREAM_ADDR": f"127.0.0.1:{free_port()}",
        "WORKER_STREAM_ADDR": f"127.0.0.1:{free_port()}",
    }
    if client_ca:
        env["TLS_CLIENT_CA_FILE"] = str(certs.ca)
    server = ServerProcess(tmp_path / "data", env=env)
    server.ca_file = str(certs.ca)
    if client_ca:
        server.client_cert = (str(certs.client_cert), str(certs.client_key))
    return server


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


@pytest.fixture
def server(tmp_path: Path, certs: Certs) -> Iterator[ServerProcess]:
    proc = tls_server(tmp_path, certs, client_ca=False)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def streams(server: ServerProcess) -> tuple[str, str]:
    return server.env["PRODUCER_STREAM_ADDR"], server.env["WORKER_STREAM_ADDR"]


def test_the_sdk_speaks_https_and_grpcs_to_a_tls_server(
    server: ServerProcess, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEQ_CA_FILE", str(certs.ca))
    producer_addr, worker_addr = streams(server)
    with Producer(server.url, "dev-producer") as producer:
        over_https = producer.create("render", {"n": 1})
    with Producer(f"grpcs://{producer_addr}", "dev-producer", http_url=server.url) as producer:
        over_grpcs = producer.create("render", {"n": 2})
        assert producer.get(over_grpcs.id).id == over_grpcs.id  # reads over https
    handled: list[str] = []
    worker = Worker(f"grpcs://{worker_addr}", "dev-worker")
    worker.register("render", lambda job: handled.append(job.id))
    worker.run(burst=True, handle_signals=False)
    assert sorted(handled) == sorted([over_https.id, over_grpcs.id])


def test_plaintext_and_untrusted_clients_are_refused(server: ServerProcess, certs: Certs) -> None:
    producer_addr, _ = streams(server)
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url.replace("https", "http") + "/readyz", timeout=5)
    # No CODEQ_CA_FILE: the system's CAs do not know ours.
    with pytest.raises(ConnectionFailed), Producer(server.url, "dev-producer", retries=0) as producer:
        producer.create("render", {})
    with pytest.raises(ConnectionFailed), Producer(f"grpc://{producer_addr}", "dev-producer", retries=0) as p:
        p.create("render", {})


def test_a_client_ca_requires_a_client_certificate(
    tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = tls_server(tmp_path, certs, client_ca=True)
    try:
        server.start()
        monkeypatch.setenv("CODEQ_CA_FILE", str(certs.ca))
        producer_addr, _ = streams(server)
        for url in (server.url, f"grpcs://{producer_addr}"):
            with pytest.raises(ConnectionFailed), Producer(url, "dev-producer", retries=0) as producer:
                producer.create("render", {})
        monkeypatch.setenv("CODEQ_CLIENT_CERT_FILE", str(certs.client_cert))
        monkeypatch.setenv("CODEQ_CLIENT_KEY_FILE", str(certs.client_key))
        for url in (server.url, f"grpcs://{producer_addr}"):
            with Producer(url, "dev-producer", retries=0) as producer:
                assert producer.create("render", {}).id
        context = ssl.create_default_context(cafile=str(certs.ca))  # trusts the server, no cert
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/readyz", timeout=5, verify=context)
    finally:
        server.stop()


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01"], ids=["nothing", "a partial hello"])
def test_a_handshake_that_never_completes_is_cut_by_the_head_deadline(
    server: ServerProcess, sent: bytes
) -> None:
    # The asyncio default would wait 60 s for the handshake; the socket gives up after WAIT.
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(sent)
        assert sock.recv(1024) == b""  # closed by the server, not a socket.timeout


def test_the_http_limits_hold_on_tls_connections(server: ServerProcess, certs: Certs) -> None:
    context = ssl.create_default_context(cafile=str(certs.ca))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 431")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and no more: the head deadline ends it
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408")


def test_a_certificate_that_does_not_load_stops_the_start(tmp_path: Path, certs: Certs) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    command = [sys.executable, "-m", "codeq.cli.main", "serve", "--dev", "--port", str(free_port())]
    command += ["--data", str(tmp_path / "data")]
    env = {
        "PATH": "",
        "HOME": str(tmp_path),
        "TLS_CERT_FILE": str(garbage),
        "TLS_KEY_FILE": str(certs.server_key),
    }
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("codeq: ") and "Traceback" not in result.stderr
