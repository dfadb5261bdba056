"""How much memory one RocksDB store may hold: its block cache and its memtables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """The caps on one store's memory (each shard's store has its own).

    The block cache holds data blocks and also the index and filter blocks of every table
    file (they are charged to it instead of being held per open file), so reads cannot grow
    memory with the number of files on disk. Memtables take at most
    `write_buffer_mb * max_write_buffers`. Together these bound RocksDB's share of the
    server's resident memory, whatever the store's size on disk.
    """

    block_cache_mb: int = 64
    write_buffer_mb: int = 16
    max_write_buffers: int = 2
