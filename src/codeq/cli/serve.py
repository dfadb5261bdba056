"""`codeq serve`: run one node until SIGTERM/SIGINT, then drain and close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
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
    configure_logging(settings.log_level, settings.log_format)
    app = App(settings)
    await app.start()
    assert app.asgi is not None
    config = uvicorn.Config(
        app.asgi,
        host=settings.host,
        port=settings.port,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    server = _Server(config, app.node.waiters.close)
    _announce(settings, app)
    try:
        await server.serve()
    finally:
        await app.stop()
        print("codeq stopped: stores closed", file=sys.stderr, flush=True)


def _announce(settings: Settings, app: App) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    persistence = settings.persistence
    store = "memory" if persistence.provider == "memory" else persistence.path
    lines = [
        f"codeq serving on http://{host}:{settings.port}",
        f"  store: {store} ({persistence.num_shards} shard(s), fsync {_on_off(persistence.fsync_on_commit)})",
        f"  recovered {app.report.live_tasks} live task(s) in {app.report.recovery_seconds:.2f}s",
    ]
    if settings.dev:
        lines.append("  dev tokens (Authorization: Bearer <token>):")
        lines += [f"    {token:<13} {what}" for token, what in DEV_TOKENS]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


def run(settings: Settings) -> None:
    try:
        import uvloop

        uvloop.run(serve(settings))
    except ImportError:
        asyncio.run(serve(settings))
