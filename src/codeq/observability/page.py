"""The `/metrics` page: rendered at most once a second, and optionally on its own listener.

A scrape renders every series on the event loop; answering repeated scrapes from a copy at
most a second old keeps a burst of scrapers from stalling the requests (issue 11). Rendering
may wait (a node with a process per shard asks the other processes for their pages), and
scrapes arriving meanwhile share that one rendering. The
separate listener (`metricsAddr`) answers only `GET /metrics`, with a bounded request head
and a deadline, so the page can live on a port the API's clients cannot reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("codeq.metrics")

Page = tuple[bytes, str]  # body, content type
Render = Callable[[], Awaitable[Page]]
MAX_HEAD_BYTES = 8 * 1024
HEAD_DEADLINE_SECONDS = 5.0


def at_once(render: Callable[[], Page]) -> Render:
    """A `Render` of a page that needs no waiting (one process's own series)."""

    async def rendered() -> Page:
        return render()

    return rendered


class MetricsPage:
    """`render()` memoised for `max_age_ms` of the injected clock; one rendering at a time."""

    def __init__(self, render: Render, now_ms: Callable[[], int], max_age_ms: int = 1000) -> None:
        self._render = render
        self._now_ms = now_ms
        self._max_age_ms = max_age_ms
        self._page: Page | None = None
        self._rendered_ms = 0
        self._lock = asyncio.Lock()

    async def __call__(self) -> Page:
        async with self._lock:  # scrapes that arrive during a rendering are answered by it
            now = self._now_ms()
            if self._page is None or not 0 <= now - self._rendered_ms < self._max_age_ms:
                self._page = await self._render()
                self._rendered_ms = now
            return self._page


class MetricsListener:
    """A minimal HTTP/1.1 server for `GET /metrics`: one request per connection, then close."""

    def __init__(self, page: MetricsPage, host: str, port: int) -> None:
        self._page = page
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host or None, self._port, limit=MAX_HEAD_BYTES
        )

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_DEADLINE_SECONDS)
            writer.write(await self._answer(head))
            await asyncio.wait_for(writer.drain(), HEAD_DEADLINE_SECONDS)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a slow, oversized or vanished client gets nothing more
        except Exception:
            log.exception("metrics listener failed a request")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if target != b"/metrics":
            return _reply(404, b"not found\n", "text/plain; charset=utf-8")
        if method not in (b"GET", b"HEAD"):
            return _reply(405, b"method not allowed\n", "text/plain; charset=utf-8")
        body, content_type = await self._page()
        return _reply(200, b"" if method == b"HEAD" else body, content_type, len(body))


def _reply(status: int, body: bytes, content_type: str, length: int | None = None) -> bytes:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body) if length is None else length}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body
