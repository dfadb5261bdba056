"""The asyncio HTTP/1.1 client and the encoding of requests: stdlib only, keep-alive pools, strict framing.

Usage::

    client = H1Client("https://node:8443/prefix", max_connections=64, connect_timeout=5.0)
    reply = await client.request(
        "POST", "/v1/codeq/tasks", headers=(("Authorization", "Bearer t"),), body=b"{}", timeout=10.0
    )
    reply.status, reply.body, reply.header("location")  # int, bytes, str | None
    await client.aclose()

- `H1Client(base_url, *, max_connections=64, connect_timeout=5.0, verify=True, idle_seconds=4.0)`:
  `base_url` is `http://` or `https://`, any host, `host:port`, `[IPv6]` literal, and an optional
  path prefix. `verify` is True (system CAs), False (no certificate check) or an `ssl.SSLContext`.
- `request(method, path, *, headers=(), body=b"", timeout)`: `path` starts with "/" (it may
  carry "?query") and is appended to the prefix; an absolute `http(s)://` URL goes to that
  origin as is (for following redirects). Host, `Connection: keep-alive` and Content-Length
  (always with a body, and 0 for an empty POST/PUT/PATCH) are set here; callers must not pass
  Host, Content-Length, Transfer-Encoding or Connection. Pass the same tuple of headers each
  time: its encoding is cached. `timeout` bounds the whole exchange (pool wait, connect, send,
  receive). A bad method, path or header raises ValueError; a closed client RuntimeError.
- `H1Response`: `status`, `headers` (the (name, value) pairs as received), `body` (complete),
  and `header(name)`: case-insensitive, several fields joined by ", ", None when absent.
- Errors, all `H1Error` with `request_sent: bool` (could the server have the request?):
  `H1ConnectError` (never sent: refused, DNS, TLS, connect timeout); `H1TransportError` (the
  connection broke after the request was written: request_sent=True, or False if it was closed
  before the write); `H1ProtocolError` (a malformed response, or one over `MAX_HEAD_BYTES` /
  `MAX_BODY_BYTES`; a transport error); `H1Timeout` (also a `TimeoutError`).
- Pools: one per origin (scheme, host, port), at most `max_connections` connections each;
  further requests wait FIFO. Idle connections are reused newest first and dropped after
  `idle_seconds` (below uvicorn's 5 s keep-alive, so the server rarely closes one first). A
  connection is reused only after a complete response without `Connection: close` (HTTP/1.0:
  only with keep-alive); after a timeout, cancellation or error it is closed. A client
  belongs to the event loop that first uses it.
- Stale connections: a pooled connection that the server closed while idle is detected before
  writing (the loop saw EOF, or a zero-timeout poll finds the socket readable) and replaced by
  a new one, so such a request is sent once. If the server instead closes the connection after
  the write without a response byte, the request may have been processed: it is retried once
  on a new connection only for GET, HEAD, OPTIONS, TRACE, PUT and DELETE; other methods get
  `H1TransportError(request_sent=True)` and the caller decides.

This module owns H1Client and the encoding of requests; `message` owns the errors,
H1Response and the parsing and framing of responses; `pool` owns connections and pools;
`fetch` is the blocking one-shot GET. `codeq.h1` re-exports the public names.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

from codeq.h1.message import _TOKEN, Fields, H1Response
from codeq.h1.pool import _Limits, _Pool

IDLE_SECONDS = 4.0

_DEFAULT_PORTS = {"http": 80, "https": 443}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_BAD_VALUE = re.compile(r"[\x00\r\n]")
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        raise ValueError(f"not an http:// or https:// URL with a host: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme], target


def _host_block(scheme: str, host: str, port: int, connection: str = "keep-alive") -> bytes:
    name = host if host.isascii() else host.encode("idna").decode("ascii")
    name = f"[{name}]" if ":" in name else name
    name = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
    return f"\r\nHost: {name}\r\nConnection: {connection}\r\n".encode("ascii")


def _encode_fields(headers: Sequence[tuple[str, str]]) -> bytes:
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or name.lower() in _RESERVED or _BAD_VALUE.search(value):
            raise ValueError(f"header {name!r} is reserved or not valid")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def _length_line(method: str, body: bytes) -> bytes:
    if body:
        return b"Content-Length: %d\r\n" % len(body)
    return b"Content-Length: 0\r\n" if method in _BODY_METHODS else b""


def _tls_context(verify: bool | ssl.SSLContext) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


class H1Client:
    """Async HTTP/1.1 client with a keep-alive pool per origin (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
        verify: bool | ssl.SSLContext = True,
        idle_seconds: float = IDLE_SECONDS,
        affinity_header: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        scheme, host, port, path = _split_url(base_url)
        if "?" in path or "#" in base_url:
            raise ValueError(f"a base URL takes no query or fragment: {base_url!r}")
        self._base_path = path.rstrip("/")
        self._limits = _Limits(max_connections, connect_timeout, idle_seconds, affinity_header)
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._pools: dict[tuple[str, str, int], tuple[_Pool, bytes]] = {}
        self._fields_cache: dict[Fields, bytes] = {}
        self._closed = False
        self._base = self._pool(scheme, host, port)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        timeout: float,
        prefer: str | None = None,
    ) -> H1Response:
        """Send one request and read its whole response (see the module docstring). With
        `prefer`, on an idle connection whose last response carried that value in the
        client's `affinity_header`, if there is one."""
        if self._closed:
            raise RuntimeError("the H1Client is closed")
        if path.startswith("/"):
            (pool, host_block), target = self._base, self._base_path + path
        else:
            scheme, host, port, target = _split_url(path)
            pool, host_block = self._pool(scheme, host, port)
        if not _TOKEN.fullmatch(method) or _BAD_TARGET.search(target):
            raise ValueError(f"bad method or path: {method!r} {target[:80]!r}")
        data = b"".join(
            (
                f"{method} {target} HTTP/1.1".encode("ascii"),
                host_block,
                self._fields(headers),
                _length_line(method, body),
                b"\r\n",
                body,
            )
        )
        return await pool.exchange(data, method == "HEAD", method in _IDEMPOTENT, timeout, prefer)

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        self._closed = True
        lost = [future for pool, _ in self._pools.values() for future in pool.close()]
        if lost:  # aborted sockets are closed on the loop's next turn
            await asyncio.wait(lost, timeout=1.0)

    def _pool(self, scheme: str, host: str, port: int) -> tuple[_Pool, bytes]:
        key = (scheme, host, port)
        found = self._pools.get(key)
        if found is None:
            if scheme == "https" and self._tls is None:
                self._tls = _tls_context(self._verify)
            tls = self._tls if scheme == "https" else None
            found = self._pools[key] = (_Pool(host, port, tls, self._limits), _host_block(*key))
        return found

    def _fields(self, headers: Sequence[tuple[str, str]]) -> bytes:
        if not headers:
            return b""
        if not isinstance(headers, tuple):
            return _encode_fields(headers)
        block = self._fields_cache.get(headers)
        if block is None:
            if len(self._fields_cache) >= 64:  # callers pass a few fixed tuples; bound the rest
                self._fields_cache.clear()
            block = self._fields_cache[headers] = _encode_fields(headers)
        return block
