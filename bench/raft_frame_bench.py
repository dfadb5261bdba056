#!/usr/bin/env python3
"""Receiving one large frame on a Raft connection: PySyncObj's TcpConnection against ours.

A socket pair on this machine; a thread writes one frame (zlib level 0 over pickled bytes) and
the poller is driven as PySyncObj's tick thread drives it. Reported per size and kind: wall
and CPU seconds until the message is delivered, and the longest single poll (how long the
tick thread was held at once).

  .venv/bin/python bench/raft_frame_bench.py [--mib 16 64]
"""

from __future__ import annotations

import argparse
import pickle
import socket
import struct
import threading
import time
import zlib
from typing import Any

from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import TcpConnection

from codeq.replication.raft_transport import BoundedConnection, FrameLimits

MiB = 1024 * 1024


def receive(kind: str, size: int) -> tuple[float, float, float]:
    poller = createPoller("auto")
    writer, reader = socket.socketpair()
    reader.setblocking(False)
    got: list[Any] = []
    options: dict[str, Any] = {"poller": poller, "socket": reader, "timeout": 600.0, "recvBufferSize": 2**16}
    if kind == "pysyncobj":
        conn = TcpConnection(**options)
    else:
        conn = BoundedConnection(FrameLimits(max_frame_bytes=2**31 - 1), **options)
        conn.trusted = True  # measuring the buffering, not the handshake cap
    conn.setOnMessageReceivedCallback(got.append)
    data = zlib.compress(pickle.dumps(b"\1" * size), 0)
    frame = struct.pack("i", len(data)) + data
    threading.Thread(target=writer.sendall, args=(frame,), daemon=True).start()
    cpu, wall, longest = time.process_time(), time.perf_counter(), 0.0
    while not got:
        started = time.perf_counter()
        poller.poll(0.01)
        longest = max(longest, time.perf_counter() - started)
    result = (time.perf_counter() - wall, time.process_time() - cpu, longest)
    writer.close()
    conn.disconnect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    for mib in args.mib:
        for kind in ("pysyncobj", "bounded"):
            wall, cpu, longest = receive(kind, mib * MiB)
            print(
                f"{kind:10s} {mib:4d} MiB frame: {wall:7.2f} s wall, {cpu:7.2f} s CPU, "
                f"longest poll {longest * 1000:8.1f} ms"
            )


if __name__ == "__main__":
    main()
