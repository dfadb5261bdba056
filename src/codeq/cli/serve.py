"""`codeq serve`: run one node until SIGTERM/SIGINT, then drain and close cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys

import codeq
from codeq.app import App
from codeq.app.supervisor import (
    STOP_MARGIN_SECONDS,
    Supervisor,
    die_with_supervisor,
    owned_shard,
    reserve_port,
)
from codeq.app.wiring import http_server_limits
from codeq.cluster.stream_table import table_path
from codeq.config import Settings
from codeq.kv.lockfile import StoreInUseError
from codeq.observability.logging import configure_logging
from codeq.transport.http.exchange import DATE
from codeq.transport.http.server import HttpServer, connection_cap, raise_descriptor_limit
from codeq.wire.http import SHARD_PROCESS_HEADER

DEV_TOKENS = (
    ("dev-producer", "producer + admin, tenant dev"),
    ("dev-worker", "worker: every scope, every command, tenant dev"),
)
# The reference's conventional stream ports (spec 07 §1), used by --dev unless set otherwise.
DEV_PRODUCER_STREAM_PORT = 9092
DEV_WORKER_STREAM_PORT = 9091


async def serve(settings: Settings, owned: int | None = None) -> None:
    """Run the node, or with `owned` the process of that one shard (ADR 0009)."""
    configure_logging(settings.log.level, settings.log.format)
    settings = _with_dev_backups(_with_dev_streams(settings, shared=owned is not None))
    app = App(settings, owned_shard=owned)
    try:
        # The certificate is loaded first: a bad one (ssl.SSLError is an OSError) stops the start.
        tls = app.tls.ssl_context() if app.tls is not None else None
        await app.start()
    except StoreInUseError as exc:
        print(f"codeq: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except OSError as exc:
        print(f"codeq: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    limits = http_server_limits(settings.http)
    server = HttpServer(app.asgi, limits, connection_cap(limits, raise_descriptor_limit()), tls)
    if app.shard_process is not None:  # which process answered: clients keep a task's calls there
        DATE.identify(f"{SHARD_PROCESS_HEADER}: {app.shard_process.owned}\r\n".encode())
    try:
        await _serve_until_signalled(server, settings, app)
    finally:
        await app.stop()
        print("codeq stopped: stores closed", file=sys.stderr, flush=True)


async def _serve_until_signalled(server: HttpServer, settings: Settings, app: App) -> None:
    """Serve until SIGTERM/SIGINT; then answer long polls at once and drain for the grace
    period (a second signal cuts the drain short). A clean stop exits 0."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grace = [settings.shutdown_grace_seconds]

    def on_signal() -> None:
        if stop.is_set():
            grace[0] = 0.0
            server.connections.abort_all()
            return
        app.begin_stop()  # answers long polls; a Raft leader starts handing over
        stop.set()

    try:
        await server.start(settings.http.host, settings.http.port, reuse_port=app.shard_process is not None)
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        print(
            f"codeq: cannot serve HTTP on {settings.http.host}:{settings.http.port}: {reason}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1) from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if app.shard_process is not None:
        _exit_with_supervisor(loop)
        await app.shard_process.accept_peers()
    try:
        _announce(settings, app)
        await stop.wait()
        await server.stop(grace[0])
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _exit_with_supervisor(loop: asyncio.AbstractEventLoop) -> None:
    """The supervisor holds the other end of stdin: end of file means it is gone (killed,
    perhaps), and a shard process must not outlive its node holding a store. Acknowledged
    writes are durable already, so it stops at once, as a crash would stop it."""

    def on_input() -> None:
        if not os.read(0, 512):
            print("codeq: the supervisor went away; this shard process stops", file=sys.stderr, flush=True)
            os._exit(1)

    loop.add_reader(0, on_input)


def _announce(settings: Settings, app: App) -> None:
    if app.shard_process is not None and app.shard_process.owned != 0:
        number = app.shard_process.owned
        live = app.report.live_tasks
        print(f"codeq shard {number} process: recovered {live} live task(s)", file=sys.stderr, flush=True)
        return
    http, store = settings.http, settings.store
    host = "127.0.0.1" if http.host in ("0.0.0.0", "") else http.host
    where = "memory" if store.provider == "memory" else store.path
    lines = [
        f"codeq serving on {'https' if app.tls else 'http'}://{host}:{http.port}",
        f"  store: {where} ({store.num_shards} shard(s), fsync {_on_off(store.fsync_on_commit)})",
        f"  recovered {app.report.live_tasks} live task(s) in {app.report.recovery_seconds:.2f}s",
        f"  hot path: {_hot_path()}",
    ]
    for name, server in (("producer", app.streams.producer), ("worker", app.streams.worker)):
        if server is not None:
            tls = " with TLS" if server.tls else ""
            lines.append(f"  {name} stream (gRPC{tls}) on {_host_of(server.address) or host}:{server.port}")
    if settings.backup_root:
        lines.append(f"  backups: below {settings.backup_root}")
    if settings.dev:
        lines.append("  dev tokens (Authorization: Bearer <token>):")
        lines += [f"    {token:<13} {what}" for token, what in DEV_TOKENS]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _hot_path() -> str:
    return "compiled (mypyc)" if codeq.NATIVE == "compiled" else f"interpreted ({codeq.NATIVE})"


def _with_dev_streams(settings: Settings, *, shared: bool = False) -> Settings:
    """--dev serves both streams on the conventional ports unless they were set otherwise;
    `shared`: the node's shard processes share them (the probe shares the port too)."""
    if not settings.dev:
        return settings
    grpc, host = settings.grpc, settings.http.host
    streams = dataclasses.replace(
        grpc,
        producer_stream_addr=grpc.producer_stream_addr
        or _dev_address(host, DEV_PRODUCER_STREAM_PORT, "producer", shared),
        worker_stream_addr=grpc.worker_stream_addr
        or _dev_address(host, DEV_WORKER_STREAM_PORT, "worker", shared),
    )
    return dataclasses.replace(settings, grpc=streams)


def _with_dev_backups(settings: Settings) -> Settings:
    """--dev keeps backups working out of the box: without backupRoot they go below ./backups
    (a new directory per backup, as everywhere); other modes must name the root."""
    if not settings.dev or settings.backup_root:
        return settings
    return dataclasses.replace(settings, backup_root=os.path.abspath("backups"))


def _dev_address(host: str, port: int, name: str, shared: bool) -> str:
    """A conventional port another process holds (another dev server, say) leaves that stream
    off with a warning rather than failing the start; an address set explicitly must bind."""
    if _can_listen(host, port, shared):
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(f"codeq: port {port} is taken; the {name} stream stays off", file=sys.stderr)
    return ""


def _can_listen(host: str, port: int, shared: bool) -> bool:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            if shared:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(address)
    except OSError:
        return False
    return True


def _host_of(address: str) -> str:
    host = address.rpartition(":")[0]
    return "127.0.0.1" if host in ("0.0.0.0", "[::]") else host


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


def _supervise(settings: Settings) -> int:
    """Run the node as a supervisor of one process per shard (ADR 0009); its exit status."""
    argv = sys.argv[1:]
    shards, streams = settings.store.num_shards, table_path(settings.store.path)
    stop = settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS
    if settings.http.port != 0:
        return Supervisor(shards, argv, streams, stop_seconds=stop).run()
    held, port = reserve_port(settings.http.host)
    try:  # the last --port wins: every shard process serves the one the supervisor holds
        return Supervisor(shards, [*argv, "--port", str(port)], streams, stop_seconds=stop).run()
    finally:
        held.close()


def run(settings: Settings) -> None:
    store = settings.store
    owned = owned_shard()
    if store.runs_shard_processes and owned is None:
        configure_logging(settings.log.level, settings.log.format)
        raise SystemExit(_supervise(settings))
    if owned is not None:
        die_with_supervisor()
    try:
        import uvloop

        uvloop.run(serve(settings, owned))
    except ImportError:
        asyncio.run(serve(settings, owned))
