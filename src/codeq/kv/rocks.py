"""RocksDB through rocksdict: the only module that imports it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import cast

import rocksdict

from codeq.kv.api import Ops
from codeq.kv.budget import MemoryBudget
from codeq.kv.lockfile import check_not_in_use


class RocksKV:
    """One RocksDB directory. Values are raw bytes (raw_mode); the WAL is always on.

    `write(sync=True)` writes the batch unsynced, then fsyncs the WAL with `flush_wal(True)`,
    which releases the GIL during the fsync so the event loop keeps running (design D2).
    """

    def __init__(self, path: str, budget: MemoryBudget | None = None, *, read_only: bool = False) -> None:
        """`read_only` opens an existing store without writing to it (nor locking it): for
        reading a stopped node's data, which must stay as it was (`codeq reshard`)."""
        if not read_only:
            os.makedirs(path, mode=0o700, exist_ok=True)
        check_not_in_use(path)  # one clear line instead of RocksDB's "IO error: While lock file"
        self.budget = budget or MemoryBudget()
        self.cache = rocksdict.Cache(self.budget.block_cache_mb * _MiB)
        self.path = path
        options = _options(self.budget, self.cache)
        options.create_if_missing(not read_only)
        access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
        self._db = rocksdict.Rdict(path, options, access_type=access)
        self._nosync = rocksdict.WriteOptions()
        self._nosync.sync = False

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return value if value is None else bytes(value)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """Several keys in one call (RocksDB's multi-get): one crossing into the library."""
        values: list[bytes | None] = self._db.get(list[str | int | float | bytes | bool](keys)) or []
        return [value if value is None else bytes(value) for value in values]

    def memory_usage(self) -> dict[str, int]:
        """RocksDB's own memory figures, in bytes: the block cache's capacity and use (index and
        filter blocks included), its pinned part, and the memtables."""
        db = self._db
        return {
            "block_cache_capacity": db.property_int_value("rocksdb.block-cache-capacity") or 0,
            "block_cache": self.cache.get_usage(),
            "block_cache_pinned": self.cache.get_pinned_usage(),
            "memtables": db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0,
        }

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        # rocksdict's own iterator walks in native code: a Python loop over `valid`, `key`,
        # `value` and `next` cost twice as much per key (a restart walks a million, issue 18).
        # from_key seeks to the lower bound (seek_to_first would ignore the bounds, design D2).
        read_opt = _scan_options()
        read_opt.set_iterate_upper_bound(upper)
        # raw_mode: keys and values are bytes (the stub types them for every mode)
        pairs = cast(Iterator[tuple[bytes, bytes]], self._db.items(from_key=lower, read_opt=read_opt))
        return itertools.islice(pairs, limit) if limit > 0 else pairs

    def scan_reverse(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        # No iterate bound here: rocksdict's lower bound stops a backward walk at once (seen
        # with 0.3); the loop checks `lower` itself. seek_for_prev lands on the last key <= upper.
        it = self._db.iter(_scan_options())
        it.seek_for_prev(upper)
        count = 0
        while it.valid():
            key = it.key()
            if key < lower:
                return
            if key < upper:
                yield key, it.value()
                count += 1
                if 0 < limit <= count:
                    return
            it.prev()

    def write(self, ops: Ops, *, sync: bool) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in ops.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch, self._nosync)
        if sync:
            self._db.flush_wal(True)

    def checkpoint(self, dest: str) -> None:
        rocksdict.Checkpoint(self._db).create_checkpoint(dest)

    def close(self) -> None:
        self._db.close()


_MiB = 1024 * 1024


def _scan_options() -> rocksdict.ReadOptions:
    """Range scans (a restart's walk of every live task, retention sweeps, listings of
    finished tasks, snapshots) leave the block cache to the point reads of claims and reads:
    a restart over a 1 GB store would otherwise fill it with blocks nobody reads again."""
    read_opt = rocksdict.ReadOptions()
    read_opt.fill_cache(False)  # type: ignore[call-arg]  # the stub lacks the flag
    return read_opt


def _options(budget: MemoryBudget, cache: rocksdict.Cache) -> rocksdict.Options:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.increase_parallelism(2)
    options.set_write_buffer_size(budget.write_buffer_mb * _MiB)
    options.set_max_write_buffer_number(budget.max_write_buffers)
    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(cache)
    # Index and filter blocks live in the cache, not beside each open table file: otherwise
    # they grow with the store on disk (issue 18). L0's stay pinned, as they are read most.
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    return options
