"""codeq (or any ASGI app) served by uvicorn on 127.0.0.1 inside the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import uvicorn

from codeq.app import App
from codeq.client import AsyncWorker
from codeq.config import Settings, load_settings
from codeq.transport.grpc.server import StreamServers
from codeq.transport.grpc.servicer import StreamLimits

ASGIApp = Any


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the tests send SIGTERM to themselves."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Served:
    """An ASGI app on a listening socket. The socket is bound and listening before uvicorn
    starts, so clients may connect at once; `port` stays the same across restarts."""

    def __init__(self, app: ASGIApp, port: int = 0) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # protocol says TCP, and Nagle plus delayed ACKs would add 40 ms to every response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            loop="none",
            http="httptools",
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self.server = _Server(config)
        self._socket = sock
        self._serving = asyncio.ensure_future(self.server.serve(sockets=[sock]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self._serving
        self._socket.close()


def sdk_settings(data: Path | None = None, **env: str) -> Settings:
    """Dev tokens, a 1 s fixed backoff and a 64 KiB payload limit; memory store unless `data`."""
    environ = {
        "BACKOFF_POLICY": "fixed",
        "BACKOFF_BASE_SECONDS": "1",
        "LIMITS_MAX_PAYLOAD_BYTES": "65536",
        **env,
    }
    store: dict[str, object] = {"provider": "memory"}
    if data is not None:
        store = {"provider": "embedded", "data_path": str(data), "fsync_on_commit": False}
    return load_settings(environ=environ, overrides={"dev": True, **store})


def stream_settings() -> Settings:
    """`sdk_settings()` with the producer and worker streams on ports of their own."""
    return sdk_settings(PRODUCER_STREAM_ADDR="127.0.0.1:0", WORKER_STREAM_ADDR="127.0.0.1:0")


class LiveServer:
    """A codeq node; `stop()` then `start()` reopens the same store on the same port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.app: App | None = None
        self._served: Served | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.app = App(self.settings)
        await self.app.start()
        self._served = Served(self.app.asgi, self.port)
        self.port = self._served.port

    @property
    def producer_url(self) -> str:
        assert self.app is not None and self.app.streams.producer is not None
        return f"grpc://127.0.0.1:{self.app.streams.producer.port}"

    @property
    def worker_url(self) -> str:
        assert self.app is not None and self.app.streams.worker is not None
        return f"grpc://127.0.0.1:{self.app.streams.worker.port}"

    async def stop_streams(self) -> None:
        """Stop only the stream servers (HTTP and the store stay up), ending every stream."""
        assert self.app is not None
        await self.app.streams.stop(0)

    async def start_streams(self, producer_url: str, worker_url: str) -> None:
        """Serve the streams again on the ports of these URLs."""
        assert self.app is not None
        fresh = StreamServers.build(
            self.app.services,
            producer_addr=producer_url.removeprefix("grpc://"),
            worker_addr=worker_url.removeprefix("grpc://"),
            limits=StreamLimits(),
        )
        # Into the node's own StreamServers, which its shutdown stops.
        streams = self.app.streams
        streams.producer, streams.worker = fresh.producer, fresh.worker
        await streams.start()

    async def stop(self) -> None:
        assert self.app is not None and self._served is not None
        self._served.server.should_exit = True
        self.app.node.waiters.close()  # answer long polls now, as `codeq serve` does on SIGTERM
        await self._served.stop()
        await self.app.stop()
        self.app = self._served = None


class Redirector:
    """Answers every request with 307 to the same path on `target`, as a Raft follower does."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.redirected = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        query = scope["query_string"].decode()
        location = self.target + scope["path"] + (f"?{query}" if query else "")
        body = json.dumps({"error": "not leader", "leader": self.target}).encode()
        headers = [(b"location", location.encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.redirected += 1


@contextlib.asynccontextmanager
async def running(worker: AsyncWorker, *, burst: bool = False) -> AsyncIterator[asyncio.Future[None]]:
    """Run `worker` in the background; stop it and wait for it on the way out."""
    run = asyncio.ensure_future(worker.run(burst=burst, handle_signals=False))
    while not worker.running and not run.done():
        await asyncio.sleep(0)  # one loop turn: run() creates its session before its first await
    try:
        yield run
    finally:
        worker.stop()
        await asyncio.wait_for(run, 30)
