#!/usr/bin/env python3
"""CPU per request of our HTTP/1.1 protocol alone: parsing, the exchange, the app shell, the reply.

16 connections (`HttpConnection` over an in-memory transport) each send 500 requests, one
after another (no pipelining), to a trivial route of the real `HttpApp` (it reads the body
and one header and answers 202 with a small JSON body); no store, no service, no sockets.
Reports the least main-thread CPU per request over `--rounds` rounds, the figure another
process' load disturbs least. For comparing changes to `transport/http/` (run an older tree with
`PYTHONPATH=<tree>/src`).

  .venv/bin/python bench/http_protocol_bench.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from http_inprocess import QuietTransport

from codeq.transport.http.app import HttpApp
from codeq.transport.http.asgi import Reply, Request, Router
from codeq.transport.http.connections import ConnectionRegistry
from codeq.transport.http.limits import HttpServerLimits
from codeq.transport.http.protocol import HttpConnection

REQUEST = (
    b"POST /v1/codeq/tasks HTTP/1.1\r\nhost: bench\r\nuser-agent: bench\r\n"
    b"authorization: Bearer dev-producer\r\ncontent-type: application/json\r\n"
    b'content-length: 20\r\n\r\n{"command":"bench"}\n'
)
CONNECTIONS, REQUESTS = 16, 500


class Transport(QuietTransport):
    """Resolves `answered` at the first write: every reply here is written in one piece."""

    def __init__(self) -> None:
        self.answered: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)


async def created(request: Request) -> Reply:
    await request.body(1 << 20)
    request.header(b"authorization")
    return Reply(202, b'{"id":"x"}')


async def user(conn: HttpConnection, transport: Transport) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(REQUESTS):
        transport.answered = loop.create_future()
        conn.data_received(REQUEST)
        await transport.answered


async def run(rounds: int) -> float:
    router = Router()
    router.add("POST", "/v1/codeq/tasks", created)
    app = HttpApp(router)
    registry = ConnectionRegistry(CONNECTIONS)
    pairs = []
    for _ in range(CONNECTIONS):
        transport = Transport()
        conn = HttpConnection(app, HttpServerLimits(), registry)
        conn.connection_made(transport)  # type: ignore[arg-type]
        pairs.append((conn, transport))
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        await asyncio.gather(*(user(conn, transport) for conn, transport in pairs))
        best = min(best, (time.thread_time() - started) / (CONNECTIONS * REQUESTS) * 1e6)
    return round(best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        us = asyncio.run(run(args.rounds))
    else:
        us = uvloop.run(run(args.rounds))
    print(json.dumps({"main_thread_cpu_us_per_request": us}))


if __name__ == "__main__":
    main()
