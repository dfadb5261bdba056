"""PySyncObj's journal made durable (design D4; upstream issue #84), and an in-memory one for
tests. Split from replication/raft.py, which builds the cores that use them; like it and
raft_transport.py, this module reaches into PySyncObj's private names, checked at import."""

from __future__ import annotations

import contextlib
import mmap
import os
import warnings
from typing import Any

from pysyncobj.journal import FileJournal, MemoryJournal, ResizableFile


class DurableJournal(FileJournal):  # type: ignore[misc]
    """PySyncObj's mmap journal made durable (upstream issue #84): `flush` msyncs and fsyncs the
    journal file, and term/vote are fsynced (file and directory) before any message shows them."""

    def __init__(self, path: str) -> None:
        with warnings.catch_warnings():
            # PySyncObj reads the meta file without closing it (CPython closes it at once).
            warnings.simplefilter("ignore", ResourceWarning)
            super().__init__(path)
        self._path = path
        self.flushes = 0
        self._flushed_to = 0  # journal offset up to which the file is known to be on disk
        # Every entry stays in memory until a compaction drops it: RaftCore compacts early
        # when these pass its limit, so memory stays bounded under large entries.
        self.held_bytes = self._count_held()

    def _count_held(self) -> int:
        return sum(len(entry[0]) for entry in getattr(self, "_FileJournal__journal"))  # noqa: B009

    def add(self, command: bytes, idx: int, term: int) -> None:
        super().add(command, idx, term)
        self.held_bytes += len(command)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        super().deleteEntriesFrom(entryFrom)
        self.held_bytes = self._count_held()

    def flush(self) -> None:
        resizable = self._FileJournal__journalFile
        mapped = resizable._ResizableFile__mm
        end = min(self._FileJournal__currentOffset, len(mapped))
        # msync only what changed since the last flush: the header page (it holds the last
        # record's offset) and the pages from the old end on; msync of the whole mapping
        # cost the tick thread ~7 % under load. fsync then covers the file size as well.
        page = mmap.PAGESIZE
        mapped.flush(0, min(page, len(mapped)))
        start = (min(self._flushed_to, end) // page) * page
        if end > start:
            mapped.flush(start, end - start)
        os.fsync(resizable._ResizableFile__f.fileno())
        self._flushed_to = end
        self.flushes += 1

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Compaction. PySyncObj rewrites the journal in place (empty it, append the rest): a
        crash in between would lose acknowledged entries. Write the rest to a new file,
        fsync it, and rename it over the journal instead."""
        keep: list[Any] = getattr(self, "_FileJournal__journal")[entryTo:]  # noqa: B009 - mypy
        staging = self._path + ".compacting"
        for leftover in (staging, staging + ".meta"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
        fresh = FileJournal(staging)
        for entry in keep:
            fresh.add(*entry)
        offset = fresh._FileJournal__currentOffset
        fresh.flush()
        os.fsync(fresh._FileJournal__journalFile._ResizableFile__f.fileno())
        fresh._destroy()
        getattr(self, "_FileJournal__journalFile")._destroy()  # noqa: B009 - assigned below: mypy
        os.replace(staging, self._path)
        fsync_dir(self._path)
        self._FileJournal__journalFile = ResizableFile(self._path)
        self._FileJournal__journal = list(keep)
        self._FileJournal__currentOffset = offset
        self._flushed_to = offset  # the new file was fsynced whole
        self.held_bytes = self._count_held()

    def clear(self) -> None:
        super().clear()
        self.held_bytes = 0
        self.flush()

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:
        meta = self._FileJournal__meta
        meta["currentTerm"] = term
        meta["votedForNodeId"] = votedForNodeId
        self._FileJournal__metaStorer.storeMeta(meta)
        meta_path = self._path + ".meta"
        fd = os.open(meta_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(meta_path)
        self._FileJournal__metaSaved = True


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in `path`'s directory durable."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryTestJournal(MemoryJournal):  # type: ignore[misc]
    """In-memory journal for tests; counts flushes so tests can see when they happen."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
