"""An in-memory KV with the same contract as RocksDB, for tests and `provider: memory`."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from codeq.kv.api import Ops


class MemoryKV:
    """Sorted keys plus a dict; `write` is atomic because nothing else runs during it."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self.closed = False
        self.writes = 0
        self.syncs = 0

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        data = self._data
        return [data.get(key) for key in keys]

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        start = bisect.bisect_left(self._keys, lower)
        end = bisect.bisect_left(self._keys, upper)
        if limit > 0:
            end = min(end, start + limit)
        # Copy the slice so that writes during iteration cannot shift it.
        for key in self._keys[start:end]:
            value = self._data.get(key)
            if value is not None:
                yield key, value

    def scan_reverse(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        start = bisect.bisect_left(self._keys, lower)
        end = bisect.bisect_left(self._keys, upper)
        if limit > 0:
            start = max(start, end - limit)
        for key in reversed(self._keys[start:end]):
            value = self._data.get(key)
            if value is not None:
                yield key, value

    def write(self, ops: Ops, *, sync: bool) -> None:
        for key, value in ops.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value
        self.writes += 1
        if sync:
            self.syncs += 1

    def checkpoint(self, dest: str) -> None:
        raise OSError(f"cannot checkpoint to {dest}: the memory store keeps nothing on disk")

    def close(self) -> None:
        self.closed = True

    def __len__(self) -> int:
        return len(self._data)
