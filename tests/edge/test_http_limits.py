"""HTTP limits before authentication, through real sockets against a real `codeq serve`."""

from __future__ import annotations

import resource
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

Start = Callable[..., ServerProcess]  # start(**env) -> a running server with those variables

PRODUCER = {"Authorization": "Bearer dev-producer"}
SHORT = "0.5"  # seconds: a deadline a test can wait out on a socket
WAIT = 5.0  # how long a test waits on a socket before calling the deadline missed


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    servers: list[ServerProcess] = []

    def _start(**env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"data{len(servers)}", env=env)
        servers.append(server)
        server.start()
        return server

    yield _start
    for server in servers:
        server.stop()


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    return sock


def read_reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or WAIT passes: then socket.timeout)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_an_oversized_head_is_refused_431(start: Start) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        assert status_of(read_reply(sock)) == 431


def test_an_unfinished_oversized_head_is_refused_before_it_ends(start: Start) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 * 1024))
        assert status_of(read_reply(sock)) == 431


def test_too_many_headers_are_refused_431(start: Start) -> None:
    server = start()
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert status_of(read_reply(sock)) == 431


def test_a_head_within_the_limits_is_served(start: Start) -> None:
    server = start()
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(90))
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n")
        assert status_of(read_reply(sock)) == 200


def test_a_trickling_head_is_cut_at_the_head_deadline(start: Start) -> None:
    server = start(HTTP_HEAD_TIMEOUT_SECONDS=SHORT)
    head = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    with connect(server) as sock:
        for byte in head:  # one byte every 0.1 s: 5 s in all if nobody cuts it
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                break
            sock.send(bytes([byte]))
        else:
            pytest.fail("the server let the head trickle in for 5 s")
        reply = read_reply(sock)
        assert reply == b"" or status_of(reply) == 408


def test_a_silent_connection_is_closed_at_the_head_deadline(start: Start) -> None:
    server = start(HTTP_HEAD_TIMEOUT_SECONDS=SHORT)
    with connect(server) as sock:
        assert read_reply(sock) == b""


def test_a_slow_body_is_cut_at_the_body_deadline(start: Start) -> None:
    server = start(HTTP_BODY_TIMEOUT_SECONDS=SHORT)
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-producer\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"command":'
        )
        reply = read_reply(sock)
        assert reply == b"" or status_of(reply) == 408


def test_an_idle_keep_alive_connection_is_closed(start: Start) -> None:
    server = start(HTTP_IDLE_TIMEOUT_SECONDS=SHORT)
    with connect(server) as sock:
        sock.settimeout(3.0)  # below the 5 s keep-alive uvicorn used, well above the deadline
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = read_reply(sock)  # returns only once the server closes the kept-alive connection
        assert status_of(reply) == 200
        assert reply.count(b"HTTP/1.1") == 1


def test_thousands_of_idle_connections_do_not_stop_healthz_or_creates(start: Start) -> None:
    """3,000 idle connections against a server started with 2,048 descriptors (soft limit):
    the server raises its limit and keeps serving."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8192:
        pytest.skip("needs a hard descriptor limit of 8192 or more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))  # inherited by the server process
    try:
        server = start(HTTP_HEAD_TIMEOUT_SECONDS="60")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    idle = open_idle(server, 3000)
    try:
        assert_served(server)
    finally:
        for sock in idle:
            sock.close()


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(start: Start) -> None:
    server = start(HTTP_MAX_CONNECTIONS="200", HTTP_HEAD_TIMEOUT_SECONDS="60")
    idle = open_idle(server, 300)
    try:
        assert_served(server)
        idle[0].settimeout(WAIT)
        assert idle[0].recv(1) == b""  # the oldest idle connection was closed to make room
    finally:
        for sock in idle:
            sock.close()


def open_idle(server: ServerProcess, count: int) -> list[socket.socket]:
    """Up to `count` connections that never send a byte (a full backlog may refuse some)."""
    opened = []
    for _ in range(count):
        try:
            opened.append(socket.create_connection(("127.0.0.1", server.port), timeout=0.5))
        except OSError:
            continue
    return opened


def assert_served(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        assert client.get("/healthz").status_code == 200
        created = client.post("/v1/codeq/tasks", json={"command": "edge", "payload": {}}, headers=PRODUCER)
        assert created.status_code in (200, 201, 202), created.text


def test_a_body_left_unsent_after_an_early_answer_gets_no_second_answer(start: Start) -> None:
    """A 413 goes out on the declared length; the body never follows; at the body deadline
    the connection just closes (a 408 then would read as the answer to a next request)."""
    server = start(HTTP_BODY_TIMEOUT_SECONDS=SHORT)
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-producer\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        reply = read_reply(sock)
        assert status_of(reply) == 413
        assert reply.count(b"HTTP/1.1 ") == 1
