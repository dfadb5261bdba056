#!/usr/bin/env python3
"""CPU of watching a long poll for its client leaving: our server's callback against the
receive-based watcher task any ASGI server needs (`transport/http/tasks.py`).

Each iteration builds one request's `Exchange` with its body read, then runs a long poll
that completes after one loop turn (a claim that found a task) under `_until_disconnect`,
once with the `codeq.on_disconnect` scope extension and once without it. Reported: the
least process CPU per iteration over 7 rounds.

  .venv/bin/python bench/long_poll_watch_bench.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from codeq.transport.http import tasks
from codeq.transport.http.asgi import Request
from codeq.transport.http.exchange import Exchange


class Connection:
    def write(self, data: bytes) -> None: ...
    def resume_reading(self) -> None: ...
    def exchange_done(self, exchange: Exchange) -> None: ...
    async def drain(self) -> None: ...


async def claimed() -> list[int]:
    await asyncio.sleep(0)
    return [1]


async def one_poll(with_callback: bool) -> None:
    scope = {"type": "http", "method": "POST", "headers": []}
    exchange = Exchange(Connection(), scope, True, False)
    if not with_callback:
        del scope["extensions"]
    exchange.end_body()
    request = Request(scope, exchange.receive, {})
    await request.body(100)
    await tasks._until_disconnect(request, claimed())


async def measure(iterations: int) -> dict[str, float]:
    best = {"callback": float("inf"), "watcher_task": float("inf")}
    for _ in range(7):
        for name, with_callback in (("callback", True), ("watcher_task", False)):
            start = time.process_time()
            for _ in range(iterations):
                await one_poll(with_callback)
            best[name] = min(best[name], (time.process_time() - start) / iterations * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        best = asyncio.run(measure(args.iterations))
    else:
        best = uvloop.run(measure(args.iterations))
    for name, micros in best.items():
        print(f"{name}: {micros:.1f} µs per long-poll claim (with the exchange around it)")


if __name__ == "__main__":
    main()
