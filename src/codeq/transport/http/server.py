"""The HTTP/1.1 server: its limits, the listening socket, and a graceful stop (see docs/adr/0006)."""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl

from codeq.transport.http.asgi import ASGIApp
from codeq.transport.http.connections import ConnectionRegistry
from codeq.transport.http.limits import HttpServerLimits
from codeq.transport.http.protocol import HttpConnection

log = logging.getLogger("codeq.http")

# Descriptors kept free of HTTP connections: stores, gRPC streams, Raft peers, webhooks, logs.
RESERVED_DESCRIPTORS = 512
LISTEN_BACKLOG = 2048


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the descriptor limit from %d", soft)
    return soft


def connection_cap(limits: HttpServerLimits, descriptor_limit: int) -> int:
    """The configured cap, kept below the descriptor limit with room for everything else."""
    return max(1, min(limits.max_connections, descriptor_limit - RESERVED_DESCRIPTORS))


class HttpServer:
    """Serves an ASGI app over HTTP/1.1 on one listening socket."""

    def __init__(
        self, app: ASGIApp, limits: HttpServerLimits, cap: int, tls: ssl.SSLContext | None = None
    ) -> None:
        self._app = app
        self._limits = limits
        self._tls = tls
        self.connections = ConnectionRegistry(cap)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        # Deadlines are checked this often, so each fires at most this late.
        shortest = min(limits.head_timeout_seconds, limits.body_timeout_seconds, limits.idle_timeout_seconds)
        self.sweep_seconds = min(1.0, max(0.05, shortest / 4))

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen; `reuse_port` shares the port with the node's other shard processes (ADR 0009)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self._app, self._limits, self.connections),
            host=host,
            port=port,
            backlog=LISTEN_BACKLOG,
            reuse_address=True,
            reuse_port=reuse_port or None,
            ssl=self._tls,
            # The connection (and its head deadline) starts once the handshake is done, so a
            # handshake that never completes is cut by the same deadline here.
            ssl_handshake_timeout=self._limits.head_timeout_seconds if self._tls else None,
        )
        self._sweep()

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when started on port 0)."""
        assert self._server is not None, "not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(
            self.sweep_seconds, self._sweep
        )  # first: a failed sweep must not end them
        self.connections.sweep(loop.time())

    async def stop(self, grace_seconds: float) -> None:
        """Stop accepting, let requests in flight finish for up to `grace_seconds`, then cut."""
        if self._server is not None:
            self._server.close()
        self.connections.shutdown_all()  # deadlines still apply while draining
        if not await self.connections.drained(grace_seconds):
            log.warning("closing %d connection(s) still busy after the grace period", len(self.connections))
            self.connections.abort_all()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            await self._server.wait_closed()
