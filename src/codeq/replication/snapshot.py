"""Raft snapshots of one shard: a RocksDB checkpoint packed into PySyncObj's full-dump file.

PySyncObj calls `serialize` on its tick thread when the journal is long enough. We take a
checkpoint (hard links: milliseconds, with the tick thread held so no entry is applied
meanwhile) and pack it into the dump on a background thread; `check` reports progress, and
only on success does PySyncObj drop the journal entries the dump covers. A follower too far
behind receives the dump and `deserialize` replaces its store with it.

An install is all or nothing across crashes: PySyncObj renames the received dump into place
before it calls `deserialize`, which fsyncs it and marks the store (RESTORING_KEY) before the
first key changes and unmarks it in the last batch. A node that stops in between finds the
mark at start, and PySyncObj's first tick loads the same dump again, which installs it whole.

Dump format: b"CDQS", u32 version, u32 header length, msgpack header (the last two applied
log entries, the member addresses and the committed roster with each member's HTTP and
stream addresses: replication/membership.py), then records 0x01 u32 klen key u32 vlen value, and 0x00.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import struct
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

import msgspec

from codeq.kv.api import KV
from codeq.kv.commit import GroupCommitter

log = logging.getLogger("codeq.raft")

MAGIC = b"CDQS"
VERSION = 1
# Replication's own keys, outside every engine range (engine keys are `<capital letter>/`).
# The index of the last applied log entry, written in the same batch as that entry's ops:
APPLIED_KEY = b"raft/applied"
RESTORING_KEY = b"raft/restoring"  # set while a dump replaces the store (spec 06 gap 11)
# The id of the backup `codeq cluster init` made this store from: peers compare it on connect.
ORIGIN_KEY = b"raft/origin"
_U32 = struct.Struct(">I")
_BE8 = struct.Struct(">Q")
_ALL = (b"", b"\xff" * 16)
_BATCH = 1024
# PySyncObj's SERIALIZER_STATE values, mirrored here so only raft.py imports PySyncObj.
NOT_SERIALIZING, SERIALIZING, SUCCESS, FAILED = 0, 1, 2, 3


class SnapshotError(Exception):
    pass


class RosterKeeper(Protocol):
    """The group's membership (replication/membership.py GroupMembers), as snapshots see it."""

    def committed(self) -> dict[str, Any]: ...

    def install(self, raw: dict[str, Any]) -> None: ...


def read_applied(store: KV | GroupCommitter) -> int:
    raw = store.get(APPLIED_KEY)
    return 0 if raw is None else int(_BE8.unpack(raw)[0])


def read_origin(store: KV | GroupCommitter) -> str:
    raw = store.get(ORIGIN_KEY)
    return "" if raw is None else raw.decode()


def applied_value(index: int) -> bytes:
    return _BE8.pack(index)


class Snapshots:
    """The serializer, serializeChecker and deserializer one group's PySyncObj runs with."""

    def __init__(
        self,
        committer: GroupCommitter,
        open_store: Callable[[str], KV],
        dump_path: str,
    ) -> None:
        self._committer = committer
        self._open_store = open_store
        self.dump_path = dump_path
        # Called on the loop with the dump's applied index once it replaced the store.
        self.on_restored: Callable[[int], None] = lambda index: None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._state = NOT_SERIALIZING
        self._building: threading.Thread | None = None
        self._built: str | None = None
        # An install that failed: the store is incomplete, so the replica must stop. (PySyncObj
        # logs an exception from `deserialize` and carries on.)
        self.failure: BaseException | None = None
        self.roster: RosterKeeper | None = None  # the group's membership, when it can change

    @property
    def interrupted(self) -> bool:
        """Whether an install began and did not finish: the store is incomplete."""
        return self._committer.get(RESTORING_KEY) is not None

    # -- writing (leader or follower: each node compacts its own journal) -------------------

    def serialize(self, tmp_path: str, meta: tuple[Any, Any, Any]) -> None:
        # PySyncObj renames tmp_path over the dump as soon as we return, long before ours is
        # built: hand it the current dump (a hard link), so the old one stays whole till then.
        if os.path.exists(self.dump_path):
            os.link(self.dump_path, tmp_path)
        else:
            open(tmp_path, "wb").close()
        checkpoint = self.dump_path + ".checkpoint"
        shutil.rmtree(checkpoint, ignore_errors=True)
        self._on_loop(self._checkpoint(checkpoint))
        header: dict[str, Any] = {
            "last": list(meta[0]),
            "prev": list(meta[1]),
            "members": sorted(str(n.id) for n in meta[2]),
        }
        if self.roster is not None:
            # Taken on the tick thread at the dump's index: the roster as of that entry.
            header["roster"] = self.roster.committed()
        self._state = SERIALIZING
        self._building = threading.Thread(
            target=self._build, args=(checkpoint, header), name="raft-snapshot", daemon=True
        )
        self._building.start()

    async def _checkpoint(self, dest: str) -> None:
        await self._committer.drain()
        self._committer.kv.checkpoint(dest)

    def _build(self, checkpoint: str, header: dict[str, Any]) -> None:
        target = self.dump_path + ".building"
        try:
            store = self._open_store(checkpoint)
            try:
                with open(target, "wb") as out:
                    write_dump(out, header, store)
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                store.close()
            self._built = target
            self._state = SUCCESS
        except Exception:
            log.exception("raft snapshot failed")
            self._state = FAILED
        finally:
            shutil.rmtree(checkpoint, ignore_errors=True)

    def check(self) -> int:
        """PySyncObj's serializeChecker, on the tick thread."""
        state = self._state
        if state == SUCCESS and self._built is not None:
            os.replace(self._built, self.dump_path)
            self._built = None
        if state in (SUCCESS, FAILED):
            self._state = NOT_SERIALIZING
        return state

    # -- reading: at start, and when a follower receives a leader's dump ----------------------

    def deserialize(self, path: str) -> tuple[Any, Any, Any]:
        try:
            with open(path, "rb") as dump:
                header = read_header(dump)
                last_index = int(header["last"][1])
                # An interrupted install may have written this dump's applied index already.
                if self.interrupted or read_applied(self._committer) < last_index:
                    _fsync(path)  # the dump must outlive a crash mid-install: it is replayed
                    self._on_loop(self._restore(dump, last_index))
            if self.roster is not None and "roster" in header:
                self.roster.install(header["roster"])
        except BaseException as exc:
            self.failure = exc
            log.critical("raft snapshot install failed: %r", exc)
            raise
        return tuple(header["last"]), tuple(header["prev"]), header["members"]

    async def _restore(self, dump: BinaryIO, last_index: int) -> None:
        committer = self._committer
        await committer.drain()
        await committer.submit({RESTORING_KEY: b"1"})
        await self._sweep(committer)
        batch: dict[bytes, bytes | None] = {}
        for key, value in read_records(dump):
            batch[key] = value
            if len(batch) >= _BATCH:
                await committer.submit(batch)
                batch = {}
        batch[RESTORING_KEY] = None  # last: a crash before this leaves the marker behind
        await committer.submit(batch)
        self.on_restored(last_index)
        log.info("raft snapshot installed up to log index %d", last_index)

    @staticmethod
    async def _sweep(committer: GroupCommitter) -> None:
        """Delete every key but the marker, a batch at a time as the scan goes (listing them
        all first would hold every key of the store in memory)."""
        batch: dict[bytes, bytes | None] = {}
        for key, _ in committer.kv.scan(*_ALL):
            if key != RESTORING_KEY:
                batch[key] = None
            if len(batch) >= _BATCH:
                await committer.submit(batch)
                batch = {}
        if batch:
            await committer.submit(batch)

    def _on_loop(self, work: Any) -> None:
        if self.loop is None:
            raise SnapshotError("snapshots need the running loop")
        future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(work, self.loop)
        future.result()


def _fsync(path: str) -> None:
    for target, flags in ((path, os.O_RDONLY), (os.path.dirname(os.path.abspath(path)), os.O_RDONLY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_dump(out: BinaryIO, header: dict[str, Any], store: KV) -> None:
    encoded = msgspec.msgpack.encode(header)
    out.write(MAGIC + _U32.pack(VERSION) + _U32.pack(len(encoded)) + encoded)
    for key, value in store.scan(*_ALL):
        out.write(b"\x01" + _U32.pack(len(key)) + key + _U32.pack(len(value)) + value)
    out.write(b"\x00")


def read_header(dump: BinaryIO) -> dict[str, Any]:
    head = dump.read(12)
    if len(head) != 12 or head[:4] != MAGIC:
        raise SnapshotError("not a codeq raft snapshot")
    if _U32.unpack_from(head, 4)[0] != VERSION:
        raise SnapshotError("unsupported snapshot version")
    header: dict[str, Any] = msgspec.msgpack.decode(_read(dump, _U32.unpack_from(head, 8)[0]))
    return header


def read_records(dump: BinaryIO) -> Any:
    while True:
        tag = _read(dump, 1)
        if tag == b"\x00":
            return
        if tag != b"\x01":
            raise SnapshotError("corrupt snapshot record")
        key = _read(dump, _U32.unpack(_read(dump, 4))[0])
        value = _read(dump, _U32.unpack(_read(dump, 4))[0])
        yield key, value


def _read(dump: BinaryIO, size: int) -> bytes:
    data = dump.read(size)
    if len(data) != size:
        raise SnapshotError("truncated snapshot")
    return data
