"""`codeq serve`: run one node until SIGTERM/SIGINT, then drain and close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import sys
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn

from codeq.app import App
from codeq.config import Settings
from codeq.observability.logging import configure_logging

DEV_TOKENS = (
    ("dev-producer", "producer + admin, tenant dev"),
    ("dev-worker", "worker: every scope, every command, tenant dev"),
)
# The reference's conventional stream ports (spec 07 §1), used by --dev unless set otherwise.
DEV_PRODUCER_STREAM_PORT = 9092
DEV_WORKER_STREAM_PORT = 9091


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising the signal after its own shutdown: the stores must still be
    drained and closed, and a clean stop should exit 0. Long polls are answered at once."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def serve(settings: Settings) -> None:
    configure_logging(settings.log.level, settings.log.format)
    settings = _with_dev_streams(settings)
    app = App(settings)
    try:
        await app.start()
    except OSError as exc:
        print(f"codeq: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    config = uvicorn.Config(
        app.asgi,
        host=settings.http.host,
        port=settings.http.port,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    server = _Server(config, app.begin_stop)
    _announce(settings, app)
    try:
        await server.serve()
    finally:
        await app.stop()
        print("codeq stopped: stores closed", file=sys.stderr, flush=True)


def _announce(settings: Settings, app: App) -> None:
    http, store = settings.http, settings.store
    host = "127.0.0.1" if http.host in ("0.0.0.0", "") else http.host
    where = "memory" if store.provider == "memory" else store.path
    lines = [
        f"codeq serving on http://{host}:{http.port}",
        f"  store: {where} ({store.num_shards} shard(s), fsync {_on_off(store.fsync_on_commit)})",
        f"  recovered {app.report.live_tasks} live task(s) in {app.report.recovery_seconds:.2f}s",
    ]
    for name, server in (("producer", app.streams.producer), ("worker", app.streams.worker)):
        if server is not None:
            lines.append(f"  {name} stream (gRPC) on {_host_of(server.address) or host}:{server.port}")
    if settings.dev:
        lines.append("  dev tokens (Authorization: Bearer <token>):")
        lines += [f"    {token:<13} {what}" for token, what in DEV_TOKENS]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _with_dev_streams(settings: Settings) -> Settings:
    """--dev serves both streams on the conventional ports unless they were set otherwise."""
    if not settings.dev:
        return settings
    grpc, host = settings.grpc, settings.http.host
    streams = dataclasses.replace(
        grpc,
        producer_stream_addr=grpc.producer_stream_addr
        or _dev_address(host, DEV_PRODUCER_STREAM_PORT, "producer"),
        worker_stream_addr=grpc.worker_stream_addr or _dev_address(host, DEV_WORKER_STREAM_PORT, "worker"),
    )
    return dataclasses.replace(settings, grpc=streams)


def _dev_address(host: str, port: int, name: str) -> str:
    """A conventional port another process holds (another dev server, say) leaves that stream
    off with a warning rather than failing the start; an address set explicitly must bind."""
    if _can_listen(host, port):
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(f"codeq: port {port} is taken; the {name} stream stays off", file=sys.stderr)
    return ""


def _can_listen(host: str, port: int) -> bool:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            probe.bind(address)
    except OSError:
        return False
    return True


def _host_of(address: str) -> str:
    host = address.rpartition(":")[0]
    return "127.0.0.1" if host in ("0.0.0.0", "[::]") else host


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


def run(settings: Settings) -> None:
    try:
        import uvloop

        uvloop.run(serve(settings))
    except ImportError:
        asyncio.run(serve(settings))
