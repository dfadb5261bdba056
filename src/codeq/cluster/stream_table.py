"""How many gRPC streams of each kind every shard process of this node holds, in a table all of
them map, and the decision to send a new stream to a less loaded process (ADR 0009).

Streams are few and long-lived, and the kernel spreads their connections over the processes by
a hash (`SO_REUSEPORT`), so one process may hold most of them while another idles. The table is
a file below the data directory: one slot per shard process, written only by its owner
(immediately on every change, and at least every `BEAT_SECONDS` to show it is up), read by
every other one. A slot is guarded by a sequence number (odd while its owner writes it), so a
reader never takes half of an update.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import OrderedDict
from collections.abc import Callable

KINDS = ("producer", "worker")
# seq (odd while written), producer streams, worker streams, when its owner last wrote it (ms).
_SLOT = struct.Struct("<QQQq")
_SEQ = struct.Struct("<Q")
_BODY = struct.Struct("<QQq")
BEAT_SECONDS = 0.5
# A slot not written for longer is a process that is not up (or is stuck): nothing is sent its way.
FRESH_MS = 3_000
_READ_TRIES = 3
# Peer connections refused once and remembered, so that each is refused at most once.
REMEMBERED_PEERS = 4096


def table_path(data_dir: str) -> str:
    return os.path.join(os.path.abspath(data_dir), "procs", "streams")


def create_table(path: str, slots: int) -> None:
    """A fresh table (every slot unknown): the supervisor makes it before it starts the processes."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, slots * _SLOT.size)
    finally:
        os.close(fd)


class StreamTable:
    """This process's view of the table: its own slot to write, every slot to read."""

    def __init__(self, path: str, slots: int, own: int, now_ms: Callable[[], int]) -> None:
        self.slots = slots
        self.own = own
        self._now_ms = now_ms
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size < slots * _SLOT.size:
                raise ValueError(f"{path} holds fewer than {slots} slots")
            self._map: mmap.mmap | None = mmap.mmap(fd, slots * _SLOT.size)
        finally:
            os.close(fd)
        self.counts = dict.fromkeys(KINDS, 0)  # the own slot's, as last written
        self._seq = _SEQ.unpack_from(self._map, own * _SLOT.size)[0] & ~1

    def add(self, kind: str, delta: int) -> None:
        """Count `delta` more streams of `kind` here, visible to every process at once."""
        self.counts[kind] += delta
        self.beat()

    def beat(self) -> None:
        """Write the own slot: its counts and the time, which says this process is up."""
        self._write(self.counts["producer"], self.counts["worker"], self._now_ms())

    def _write(self, producer: int, worker: int, updated_ms: int) -> None:
        mapped = self._map
        if mapped is None:  # closed: the streams still ending at shutdown count no more
            return
        offset = self.own * _SLOT.size
        self._seq += 1
        _SEQ.pack_into(mapped, offset, self._seq)
        _BODY.pack_into(mapped, offset + _SEQ.size, producer, worker, updated_ms)
        self._seq += 1
        _SEQ.pack_into(mapped, offset, self._seq)

    async def tick(self) -> int | None:
        """The background beat (`Runner`)."""
        self.beat()
        return None

    def view(self, kind: str) -> list[int] | None:
        """The streams of `kind` each process holds; None unless every slot is fresh."""
        mapped = self._map
        if mapped is None:
            return None
        now = self._now_ms()
        found: list[int] = []
        for slot in range(self.slots):
            if slot == self.own:
                found.append(self.counts[kind])
                continue
            read = _read_slot(mapped, slot)
            if read is None or read[2] == 0 or abs(now - read[2]) > FRESH_MS:
                return None
            found.append(read[KINDS.index(kind)])
        return found

    def close(self) -> None:
        """Mark the own slot unknown (this process no longer takes streams) and unmap."""
        mapped = self._map
        if mapped is None:
            return
        self._write(0, 0, 0)
        self._map = None
        mapped.close()


def _read_slot(mapped: mmap.mmap, slot: int) -> tuple[int, int, int] | None:
    """(producer, worker, updated_ms) of a slot, or None while its owner keeps writing it."""
    offset = slot * _SLOT.size
    for _ in range(_READ_TRIES):
        (seq,) = _SEQ.unpack_from(mapped, offset)
        if seq & 1:
            continue
        body: tuple[int, int, int] = _BODY.unpack_from(mapped, offset + _SEQ.size)
        if _SEQ.unpack_from(mapped, offset)[0] == seq:
            return body
    return None


class StreamBalance:
    """Whether this process takes a new, authenticated stream or sends it elsewhere.

    It refuses one when it already holds more streams of that kind than the least loaded
    process (taking it would leave it two above), so that the client connects again and the
    kernel hashes the new connection anew. It never refuses on a view it cannot trust (a slot
    unknown or not written lately), and never refuses one peer connection twice: a client that
    retries on the same connection (codeQ's Go SDK) is taken the second time.
    """

    def __init__(self, table: StreamTable) -> None:
        self.table = table
        self.refused = dict.fromkeys(KINDS, 0)
        self._refused_peers: OrderedDict[str, None] = OrderedDict()

    def admit(self, kind: str, peer: str) -> bool:
        """True: the stream is counted here (release it when it ends); False: refuse it."""
        counts = self.table.view(kind)
        if counts is not None and counts[self.table.own] > min(counts) and self._first_refusal(peer):
            self.refused[kind] += 1
            return False
        self.table.add(kind, 1)
        return True

    def release(self, kind: str) -> None:
        """A stream `admit` counted has ended, however it ended."""
        self.table.add(kind, -1)

    def _first_refusal(self, peer: str) -> bool:
        if peer in self._refused_peers:
            return False
        self._refused_peers[peer] = None
        if len(self._refused_peers) > REMEMBERED_PEERS:
            self._refused_peers.popitem(last=False)
        return True
