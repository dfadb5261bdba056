"""The storage seam: an ordered byte-keyed store with atomic multi-key writes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

# An atomic write: key -> new value, or None to delete the key. Insertion order is kept.
Ops = Mapping[bytes, bytes | None]


class KV(Protocol):
    """What the engine needs from a store. Implementations: memory (tests) and RocksDB.

    Calls may block (disk); the group committer runs `write` on its own thread. Reads
    (`get`, `scan`) are cheap enough to run on the event loop.
    """

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The values of `keys` (None where absent), in their order."""
        ...

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """Keys in [lower, upper) in byte order; at most `limit` pairs when limit > 0."""
        ...

    def scan_reverse(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """Keys in [lower, upper) from the last down; at most `limit` pairs when limit > 0."""
        ...

    def write(self, ops: Ops, *, sync: bool) -> None:
        """Apply all ops atomically; when `sync`, return only once they are on disk."""
        ...

    def checkpoint(self, dest: str) -> None:
        """Write a consistent, openable copy of the store to the new directory `dest`."""
        ...

    def close(self) -> None: ...


def prefix_upper_bound(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\xff" * (len(prefix) + 1)
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
