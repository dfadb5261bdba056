"""HTTP/1.1 framing of `codeq serve` through raw sockets: keep-alive, pipelining, chunked bodies,
100-continue, HEAD, and the request-smuggling refusals."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

AUTH = b"Authorization: Bearer dev-producer\r\n"
POST_HEAD = b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\n"
CREATE = b'{"command":"edge","payload":{"n":1}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(Path(tmp_path_factory.mktemp("edge")) / "data")
    proc.start()
    yield proc
    proc.stop()


class Reader:
    """Reads HTTP/1.1 responses framed by Content-Length off one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buffer += chunk

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split(" ")[1]), headers, body

    def closed(self) -> bool:
        return self.buffer == b"" and self.sock.recv(1) == b""


Conn = tuple[socket.socket, "Reader"]


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[Conn]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    yield sock, Reader(sock)
    sock.close()


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Type: application/json\r\n"
        + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


def test_keep_alive_serves_several_requests_on_one_connection(conn: Conn) -> None:
    sock, reader = conn
    for _ in range(3):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = reader.response()
        assert status == 200
        assert headers.get("connection") != "close"


def test_pipelined_requests_are_answered_in_order(conn: Conn) -> None:
    sock, reader = conn
    sock.sendall(
        post(CREATE) + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert [reader.response()[0] for _ in range(3)] == [202, 404, 200]


def test_a_chunked_body_is_read(conn: Conn) -> None:
    sock, reader = conn
    chunks = (
        b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in (CREATE[:10], CREATE[10:])) + b"0\r\n\r\n"
    )
    sock.sendall(
        b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunks
    )
    status, _, body = reader.response()
    assert status == 202
    assert json.loads(body)["command"] == "edge"


def test_expect_100_continue_is_answered_before_the_body(conn: Conn) -> None:
    sock, reader = conn
    request = post(CREATE, b"Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    sock.sendall(head + b"\r\n\r\n")
    assert reader.response(head_only=True)[0] == 100
    sock.sendall(body)
    assert reader.response()[0] == 202


def test_a_too_large_body_is_413_without_100_continue(conn: Conn) -> None:
    sock, reader = conn
    sock.sendall(
        b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Expect: 100-continue\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    assert reader.response()[0] == 413


def test_head_has_the_length_but_no_body(conn: Conn) -> None:
    sock, reader = conn
    sock.sendall(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = reader.response(head_only=True)
    assert status in (200, 405)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.response()[0] == 200  # nothing of a body was left before this answer


def test_connection_close_and_http_1_0_end_the_connection(conn: Conn, server: ServerProcess) -> None:
    sock, reader = conn
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reader.response()[1]["connection"] == "close"
    assert reader.closed()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as old:
        old.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        old_reader = Reader(old)
        assert old_reader.response()[0] == 200
        assert old_reader.closed()


@pytest.mark.parametrize(
    "request_bytes",
    [
        POST_HEAD + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        POST_HEAD + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        POST_HEAD + b"Transfer-Encoding: gzip\r\n\r\nabc",
    ],
    ids=["length-and-chunked", "two-lengths", "bad-chunk-size", "not-chunked-last"],
)
def test_ambiguous_framing_is_refused_and_the_connection_closed(conn: Conn, request_bytes: bytes) -> None:
    sock, reader = conn
    sock.sendall(request_bytes + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.response()[0] == 400
    assert reader.closed()  # the smuggled second request is never answered
