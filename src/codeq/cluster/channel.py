"""One connection between shard processes: length-prefixed msgpack frames, each a batch.

A frame is a 4-byte big-endian length and a msgpack array of messages; everything sent in one
turn of the event loop goes out as one frame (one write, one decode at the other end), so
forwarding stays cheap under load. A message is `(kind, request id, body)`.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable
from typing import Any, cast

import msgspec

SUBMIT = 1  # body: an encoded command
READ = 2  # body: (read name, arguments)
ANSWER = 3  # body: the encoded outcome or read answer
REFUSED = 4  # body: an encoded error
READY = 5  # pushed, id 0; body: [(tenant, command key, count), ...]

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024
Message = tuple[int, int, Any]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[tuple[int, int, Any]])


class Channel(asyncio.Protocol):
    """Frames in and out of one stream connection; `on_message` sees each message in order."""

    def __init__(
        self,
        on_message: Callable[[Message], None],
        on_lost: Callable[[Channel], None],
        on_made: Callable[[Channel], None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_made = on_made
        self._buffer = bytearray()
        self._outbox: list[Message] = []
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer)
            if size > MAX_FRAME_BYTES:  # not a peer speaking this protocol
                self.close()
                return
            end = HEADER.size + size
            if len(buffer) < end:
                return
            # Views are released before the buffer shrinks (a bytearray with a view cannot).
            with memoryview(buffer) as view, view[HEADER.size : end] as frame:
                messages = _decoder.decode(frame)
            del buffer[:end]
            for message in messages:
                self._on_message(message)

    def send(self, kind: int, request_id: int, body: Any) -> None:
        """Queue one message; the queue goes out as one frame at the end of this loop turn."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append((kind, request_id, body))

    def _flush(self) -> None:
        messages, self._outbox = self._outbox, []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = _encoder.encode(messages)
        transport.write(HEADER.pack(len(body)) + body)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_lost(self)


def parse_address(address: str) -> tuple[str, str]:
    """`unix:<path>` or `tcp:<host>:<port>` as (scheme, rest)."""
    scheme, _, rest = address.partition(":")
    if scheme not in ("unix", "tcp") or not rest:
        raise ValueError(f"a shard address is unix:<path> or tcp:<host>:<port>, not {address!r}")
    return scheme, rest


async def connect(address: str, factory: Callable[[], Channel]) -> Channel:
    loop = asyncio.get_running_loop()
    scheme, rest = parse_address(address)
    if scheme == "unix":
        _, channel = await loop.create_unix_connection(factory, rest)
    else:
        host, _, port = rest.rpartition(":")
        _, channel = await loop.create_connection(factory, host.strip("[]"), int(port))
    return channel


async def listen(address: str, factory: Callable[[], Channel]) -> asyncio.Server:
    """Listen at `address`; a Unix socket left by a process that died is replaced, and only
    this user may connect to it (the data directory's owner)."""
    loop = asyncio.get_running_loop()
    scheme, rest = parse_address(address)
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        return await loop.create_server(factory, host.strip("[]"), int(port))
    os.makedirs(os.path.dirname(rest), mode=0o700, exist_ok=True)
    if os.path.exists(rest):
        os.unlink(rest)
    server = await loop.create_unix_server(factory, rest)
    os.chmod(rest, 0o600)
    return server
