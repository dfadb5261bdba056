"""The Raft connection's read path over a real socket pair: framing, limits and the handshake."""

from __future__ import annotations

import contextlib
import pickle
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import CONNECTION_STATE

from codeq.replication.raft_transport import BoundedConnection, FrameLimits

MiB = 1024 * 1024
LIMITS = FrameLimits(max_frame_bytes=24 * MiB, handshake_bytes=1024, handshake_seconds=3.0)


def frame(message: Any) -> bytes:
    data = zlib.compress(pickle.dumps(message), 3)
    return struct.pack("i", len(data)) + data


class Pair:
    """A BoundedConnection on one end of a socket pair; the test writes to the other end."""

    def __init__(self, trust_after_first: bool = True) -> None:
        self.poller = createPoller("auto")
        self.writer, reader = socket.socketpair()
        reader.setblocking(False)
        self.received: list[Any] = []
        self.conn = BoundedConnection(LIMITS, poller=self.poller, socket=reader, timeout=60.0)
        self.trust_after_first = trust_after_first
        self.conn.setOnMessageReceivedCallback(self._received)

    def _received(self, message: Any) -> None:
        self.received.append(message)
        if self.trust_after_first:
            self.conn.trusted = True  # what the transport does once the peer named itself

    def send(self, data: bytes) -> None:
        """Written from a thread: the pair's buffers are smaller than the data."""
        threading.Thread(target=self._send_quietly, args=(data,), daemon=True).start()

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the reader may drop the connection
            self.writer.sendall(data)

    def pump_until(self, done: Any, rounds: int = 20_000) -> None:
        for _ in range(rounds):
            if done():
                return
            self.poller.poll(0.01)
        raise AssertionError("the connection did not get there")

    def close(self) -> None:
        self.writer.close()
        self.conn.disconnect()

    @property
    def dropped(self) -> bool:
        return bool(self.conn.state == CONNECTION_STATE.DISCONNECTED)


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


@pytest.fixture
def untrusted() -> Iterator[Pair]:
    p = Pair(trust_after_first=False)
    yield p
    p.close()


def test_a_small_handshake_then_large_frames_in_one_burst_all_arrive(pair: Pair) -> None:
    """A peer names itself and the leader's catch-up follows at once: nothing may be cut."""
    big = b"e" * (20 * MiB)
    pair.send(frame("127.0.0.1:7001") + frame({"entries": big}) + frame("tail"))
    pair.pump_until(lambda: len(pair.received) == 3 or pair.dropped)
    assert not pair.dropped
    assert pair.received == ["127.0.0.1:7001", {"entries": big}, "tail"]


def test_frames_split_anywhere_are_reassembled(pair: Pair) -> None:
    data = frame("hello") + b"".join(frame(n) for n in range(500)) + frame(b"z" * 300_000)
    pair.send(data)
    pair.pump_until(lambda: len(pair.received) == 502 or pair.dropped)
    assert pair.received == ["hello", *range(500), b"z" * 300_000]


@pytest.mark.parametrize("length", [-1, LIMITS.handshake_bytes + 1, 2**31 - 1])
def test_before_the_handshake_only_small_frames_are_read(untrusted: Pair, length: int) -> None:
    untrusted.send(struct.pack("i", length) + b"x" * 4096)
    untrusted.pump_until(lambda: untrusted.dropped)
    assert untrusted.received == []


def test_after_the_handshake_frames_beyond_the_largest_valid_one_drop_it(pair: Pair) -> None:
    pair.send(frame("127.0.0.1:7001") + struct.pack("i", LIMITS.max_frame_bytes + 1) + b"x" * 4096)
    pair.pump_until(lambda: pair.dropped)
    assert pair.received == ["127.0.0.1:7001"]


def test_an_undecodable_frame_drops_the_connection(pair: Pair) -> None:
    pair.send(struct.pack("i", 5) + b"junk!" + frame("never read"))
    pair.pump_until(lambda: pair.dropped)
    assert pair.received == []
