#!/usr/bin/env python3
"""Server CPU per HTTP cycle in process: our HTTP/1.1 protocol and the real app, no sockets.

Each virtual user owns two connections (`HttpConnection` over an in-memory transport) and
runs the bench cycle in a closed loop: `POST /tasks` → `POST /tasks/claim` (waitSeconds 30,
as the SDK worker claims) → `POST /tasks/<id>/result`. The node is a full `App` (`--dev`,
the `--provider`'s stores, fsync on with embedded RocksDB). No client process and no kernel: what is
left is the server's own work per cycle, for comparing changes to the server's code.

On a shared machine CPU per cycle drifts with the load, so the run is split into short
bursts and the report gives the least CPU per cycle of any burst (main thread, and process
with the commit thread), the figure another process' load disturbs least.

  .venv/bin/python bench/http_inprocess.py [--users 64] [--cycles 4] [--bursts 40]
      [--provider embedded|memory]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time

from codeq.app import App
from codeq.config import load_settings
from codeq.transport.http.asgi import ASGIApp
from codeq.transport.http.connections import ConnectionRegistry
from codeq.transport.http.limits import HttpServerLimits
from codeq.transport.http.protocol import HttpConnection

PAYLOAD = b'{"command":"bench","payload":{"p":"' + b"x" * 52 + b'"}}'
CLAIM = b'{"commands":["bench"],"leaseSeconds":300,"waitSeconds":30}'
RESULT = b'{"status":"COMPLETED","result":{"ok":true}}'


class QuietTransport:
    """What a connection asks of its transport besides `write`: nothing happens (no socket)."""

    def get_extra_info(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", 1)

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...


class Transport(QuietTransport):
    """Collects what the server writes and resolves `answer` once a whole response is in."""

    def __init__(self) -> None:
        self.buffer = b""
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    def write(self, data: bytes) -> None:
        self.buffer += data
        head, found, body = self.buffer.partition(b"\r\n\r\n")
        if not found or self.answer is None:
            return
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(body) >= length:
            self.buffer = b""
            self.answer.set_result((int(head[9:12]), body))


class Client:
    def __init__(self, app: ASGIApp, registry: ConnectionRegistry, token: bytes) -> None:
        self.token = token
        self.transport = Transport()
        self.conn = HttpConnection(app, HttpServerLimits(), registry)
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        head = b"POST /v1/codeq%b HTTP/1.1\r\nhost: bench\r\nuser-agent: bench\r\n" % path
        head += b"authorization: Bearer %b\r\ncontent-type: application/json\r\n" % self.token
        self.transport.answer = asyncio.get_running_loop().create_future()
        self.conn.data_received(head + b"content-length: %d\r\n\r\n%b" % (len(body), body))
        return await self.transport.answer


async def user(app: ASGIApp, cycles: int) -> None:
    registry = ConnectionRegistry(16)
    producer, worker = Client(app, registry, b"dev-producer"), Client(app, registry, b"dev-worker")
    for _ in range(cycles):
        status, _ = await producer.post(b"/tasks", PAYLOAD)
        claimed, body = await worker.post(b"/tasks/claim", CLAIM)
        if (status, claimed) != (202, 200):
            raise RuntimeError(f"create {status}, claim {claimed}")
        task_id = json.loads(body)["id"].encode()
        status, _ = await worker.post(b"/tasks/%b/result" % task_id, RESULT)
        if status != 200:
            raise RuntimeError(f"result {status}")


async def run(args: argparse.Namespace) -> dict[str, float]:
    data = tempfile.mkdtemp(prefix="codeq-http-inprocess-")
    settings = load_settings(
        environ={}, overrides={"dev": True, "data_path": data, "provider": args.provider}
    )
    app = App(settings)
    await app.start()
    try:
        await asyncio.gather(*(user(app.asgi, 20) for _ in range(args.users)))  # warm-up
        main_us, process_us = float("inf"), float("inf")
        cycles = args.users * args.cycles
        for _ in range(args.bursts):
            thread, process = time.thread_time(), time.process_time()
            await asyncio.gather(*(user(app.asgi, args.cycles) for _ in range(args.users)))
            main_us = min(main_us, (time.thread_time() - thread) / cycles * 1e6)
            process_us = min(process_us, (time.process_time() - process) / cycles * 1e6)
    finally:
        await app.stop()
        shutil.rmtree(data, ignore_errors=True)
    return {
        "main_thread_cpu_us_per_cycle": round(main_us, 1),
        "process_cpu_us_per_cycle": round(process_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=4, help="cycles per user in one burst")
    parser.add_argument("--bursts", type=int, default=40)
    parser.add_argument("--provider", choices=("embedded", "memory"), default="embedded")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(run(args))))
    else:
        print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
