"""One blocking HTTP/1.1 GET for callers on a worker thread: one deadline, a capped body.

Usage::

    reply = fetch("https://issuer.example/.well-known/jwks.json", timeout=5.0, max_body_bytes=1 << 20)
    reply.status, reply.body, reply.header("cache-control")

The request goes out with `Connection: close` on a fresh connection (no pool: the callers
fetch seldom) and its response is read by the same `ResponseParser` as `H1Client`'s, so
framing, limits and errors are the same: `H1ConnectError` (refused, DNS, TLS, connect
timeout), `H1TransportError` (the connection broke), `H1ProtocolError` (malformed, or a body
over `max_body_bytes`), `H1Timeout` when `timeout` (the whole exchange, connect included)
runs out; `timeout=None` waits without a limit. Redirects are not followed. A bad URL or
header raises ValueError.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Sequence

from codeq.h1.client import _encode_fields, _host_block, _split_url, _tls_context
from codeq.h1.message import (
    MAX_BODY_BYTES,
    H1ConnectError,
    H1Response,
    H1Timeout,
    H1TransportError,
    ResponseParser,
)

_READ_BYTES = 64 * 1024


class _Deadline:
    """What is left of the exchange's time budget, as a socket timeout."""

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def left(self, request_sent: bool) -> float | None:
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise H1Timeout("no response in time", request_sent=request_sent)
        return left


def fetch(
    url: str,
    *,
    timeout: float | None,
    headers: Sequence[tuple[str, str]] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    verify: bool | ssl.SSLContext = True,
) -> H1Response:
    """GET `url` and return its whole response (see the module docstring)."""
    scheme, host, port, target = _split_url(url)
    data = b"".join(
        (
            f"GET {target} HTTP/1.1".encode("ascii"),
            _host_block(scheme, host, port, "close"),
            _encode_fields(headers),
            b"\r\n",
        )
    )
    deadline = _Deadline(timeout)
    tls = _tls_context(verify) if scheme == "https" else None
    with _connect(host, port, tls, deadline) as sock:
        return _exchange(sock, data, ResponseParser(max_body_bytes), deadline)


def _connect(host: str, port: int, tls: ssl.SSLContext | None, deadline: _Deadline) -> socket.socket:
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=deadline.left(False))
    except H1Timeout:
        raise H1ConnectError(f"cannot connect to {label}: timed out") from None
    except OSError as exc:  # TimeoutError included
        raise H1ConnectError(f"cannot connect to {label}: {exc}") from exc
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)  # the handshake runs under the timeout
    except OSError as exc:  # ssl.SSLError and a handshake timeout included
        sock.close()
        raise H1ConnectError(f"cannot connect to {label}: {exc}") from exc


def _exchange(sock: socket.socket, data: bytes, parser: ResponseParser, deadline: _Deadline) -> H1Response:
    sent = False
    try:
        sock.settimeout(deadline.left(sent))
        sock.sendall(data)
        sent = True
        parser.start(head_only=False)
        while True:
            sock.settimeout(deadline.left(sent))
            chunk = sock.recv(_READ_BYTES)
            response = parser.feed(chunk) if chunk else parser.at_eof()
            if response is not None:
                return response
            if not chunk:
                raise H1TransportError(
                    "connection closed before the response was complete", request_sent=True
                )
    except H1Timeout:
        raise
    except TimeoutError:  # the socket's own timeout: what was left of the deadline ran out
        raise H1Timeout("no response in time", request_sent=sent) from None
    except OSError as exc:
        raise H1TransportError(f"connection failed: {exc}", request_sent=sent) from exc
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
