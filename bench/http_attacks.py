#!/usr/bin/env python3
"""The HTTP attacks of issue 11 item 1, bounded and on loopback only; each says whether the
server survived it. Used by http_servers.py; runnable alone against a URL:

    python bench/http_attacks.py http://127.0.0.1:8080

Every attack stops by itself (bounded bytes, connections and seconds). Survival means:
the server refused or cut the attacker (a 4xx, or closing the connection) and still
answered /healthz and a create within 1 s afterwards.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

PRODUCER = {"Authorization": "Bearer dev-producer"}
# The deadlines the servers are configured with for this run (where they have the knob).
DEADLINE_SECONDS = 2.0
FLOOD_CONNECTIONS = 6000  # beyond the 4,096 descriptors the servers get in http_servers.py


def _connect(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=5)


def _reacted(sock: socket.socket, wait: float) -> bool:
    """True when the server answered or closed within `wait` seconds."""
    readable, _, _ = select.select([sock], [], [], wait)
    return bool(readable)


def big_head(host: str, port: int) -> bool:
    """A header line that never ends: up to 8 MiB, in 64 KiB pieces."""
    with _connect(host, port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(128):
            if _reacted(sock, 0.02):
                return True
            try:
                sock.sendall(b"a" * 65536)
            except OSError:
                return True
        return _reacted(sock, 1.0)


def many_headers(host: str, port: int) -> bool:
    """10,000 small headers (60 KB: under a 64 KiB size limit, so only a count stops it)."""
    with _connect(host, port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 10_000 + b"\r\n")
        try:
            reply = sock.recv(64)
        except OSError:
            return True
        return not reply.startswith(b"HTTP/1.1 200")


def slow_head(host: str, port: int) -> bool:
    """A valid head, one byte of a header value every 0.2 s; cut within 3× the deadline to survive."""
    with _connect(host, port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        deadline = time.monotonic() + 3 * DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if _reacted(sock, 0.2):
                return True
            try:
                sock.send(b"a")
            except OSError:
                return True
        return False


def slow_body(host: str, port: int) -> bool:
    """A create whose body stops after 10 of its 100 bytes."""
    with _connect(host, port) as sock:
        sock.sendall(
            b"POST /v1/codeq/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-producer\r\n"
            b"Content-Length: 100\r\n\r\n0123456789"
        )
        return _reacted(sock, 3 * DEADLINE_SECONDS)


def idle_keep_alive(host: str, port: int) -> bool:
    """After one answered request the connection stays silent; closed within 2× the deadline."""
    with _connect(host, port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        if not _reacted(sock, 2.0):
            return False
        sock.recv(65536)
        return _reacted(sock, 2 * DEADLINE_SECONDS)


def flood(host: str, port: int) -> bool:
    """6,000 idle connections held open, then /healthz and a create must each answer in 1 s."""
    held: list[socket.socket] = []
    try:
        for _ in range(FLOOD_CONNECTIONS):
            try:
                held.append(socket.create_connection((host, port), timeout=0.2))
            except OSError:
                continue
        return served(host, port)
    finally:
        for sock in held:
            sock.close()


def served(host: str, port: int) -> bool:
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=1.0) as client:
            healthy = client.get("/healthz").status_code == 200
            created = client.post(
                "/v1/codeq/tasks", json={"command": "attack", "payload": {}}, headers=PRODUCER
            )
            return healthy and created.status_code < 300
    except httpx.HTTPError:
        return False


ATTACKS: dict[str, Callable[[str, int], bool]] = {
    "big head": big_head,
    "10k headers": many_headers,
    "slow head": slow_head,
    "slow body": slow_body,
    "idle keep-alive": idle_keep_alive,
    "6k idle conns": flood,
}


def run_all(host: str, port: int) -> dict[str, bool]:
    """Each attack, then whether the server still serves; the flood last (it is the heaviest)."""
    results = {}
    for name, attack in ATTACKS.items():
        try:
            survived = attack(host, port)
        except OSError:
            survived = False
        results[name] = survived and served(host, port)
    return results


def main() -> None:
    url = urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
    for name, survived in run_all(url.hostname or "127.0.0.1", url.port or 80).items():
        print(f"{name:<18} {'survived' if survived else 'FAILED'}")


if __name__ == "__main__":
    main()
