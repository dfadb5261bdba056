"""Group commit: every write waiting at the same moment shares one write and one fsync."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence

from codeq.core.errors import StorageError
from codeq.kv.api import KV, Ops
from codeq.kv.writer import WriterThread

CommitObserver = Callable[[int, float], None]
# Hears the events of every command in a batch once the batch is durable (see `submit`).
DurableEvents = Callable[[Sequence[object]], None]

log = logging.getLogger("codeq.kv")


class GroupCommitter:
    """Merges the ops of every submitter into one atomic batch per disk write.

    Writes become visible to `get`/`scan` at once (an overlay of pending and in-flight ops)
    so the engine can read its own writes, but a submitter is answered only when its ops
    are durable: written, and fsynced when `fsync` is on. Because batches are written one at
    a time and in order, anything a durable write depended on is durable too.

    There is no cap on how many submitters share a write; `max_pending_bytes` bounds the
    bytes waiting, and `wait_for_room` lets callers hold back new work while it is exceeded.
    A failed write leaves memory ahead of disk, so the committer then refuses all writes.

    The values of the last few durable batches stay in memory too (`recent_bytes` of keys
    and values, in two generations, so at most twice that): a task is created, claimed and
    finished within moments, so its claim and its finish read its record from memory instead
    of crossing into the store. Every write of the store passes through here, so a
    remembered value is always the stored one.

    Events given with ops go, for the whole batch at once, to the `publish_to` function
    after the batch is durable and before any submitter is answered: one call per batch
    rather than a callback per command, and independent of the submitters' futures, so a
    submitter that goes away (its future cancelled) loses neither its write nor its events.
    """

    def __init__(
        self,
        kv: KV,
        *,
        fsync: bool = True,
        max_pending_bytes: int = 64 << 20,
        name: str = "kv",
        on_commit: CommitObserver | None = None,
        recent_bytes: int = 2 << 20,
    ) -> None:
        self.kv = kv
        self.fsync = fsync
        self._max_pending_bytes = max_pending_bytes
        self._on_commit = on_commit
        self._writer = WriterThread(name)
        self._pending: dict[bytes, bytes | None] = {}
        self._pending_bytes = 0
        self._pending_count = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._events: list[object] = []
        self._announce = False  # a submitter asked for the batch's events to be published
        self._publish: DurableEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[bytes, bytes | None] = {}
        # Durable values of the latest batches: `_recent` fills up to `recent_bytes`, then
        # becomes `_older` (the one before is dropped), so at most twice that is held.
        self._recent: dict[bytes, bytes | None] = {}
        self._older: dict[bytes, bytes | None] = {}
        self._recent_size = 0
        self._recent_limit = recent_bytes
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failure: BaseException | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="group-commit")

    def publish_to(self, publish: DurableEvents) -> None:
        """Where the events submitted with ops go once their batch is durable."""
        self._publish = publish

    @property
    def has_room(self) -> bool:
        """False while `max_pending_bytes` is exceeded (then `wait_for_room`)."""
        return self._room.is_set()

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def get(self, key: bytes) -> bytes | None:
        for overlay in (self._pending, self._inflight, self._recent, self._older):
            if key in overlay:
                return overlay[key]
        return self.kv.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """`get` of several keys: those the overlay does not hold are read in one store call."""
        overlays = (self._pending, self._inflight, self._recent, self._older)
        found: list[bytes | None] = []
        missing: list[bytes] = []
        where: list[int] = []
        for key in keys:
            for overlay in overlays:
                if key in overlay:
                    found.append(overlay[key])
                    break
            else:
                where.append(len(found))
                missing.append(key)
                found.append(None)
        if missing:
            for at, value in zip(where, self.kv.get_many(missing), strict=True):
                found[at] = value
        return found

    def scan(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """Keys in [lower, upper) as the engine sees them (durable state plus the overlay)."""
        return self._overlaid(lower, upper, limit, reverse=False)

    def scan_reverse(self, lower: bytes, upper: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """`scan` from the last key down."""
        return self._overlaid(lower, upper, limit, reverse=True)

    def _overlaid(
        self, lower: bytes, upper: bytes, limit: int, *, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        durable = self.kv.scan_reverse if reverse else self.kv.scan
        overlay = {**self._inflight, **self._pending}
        shadow = {k: v for k, v in overlay.items() if lower <= k < upper}
        if not shadow:
            yield from durable(lower, upper, limit)
            return
        merged: dict[bytes, bytes | None] = dict(durable(lower, upper, limit + len(shadow) if limit else 0))
        merged.update(shadow)
        count = 0
        for key in sorted(merged, reverse=reverse):
            value = merged[key]
            if value is None:
                continue
            yield key, value
            count += 1
            if 0 < limit <= count:
                return

    def submit(self, ops: Ops, events: Sequence[object] | None = None) -> asyncio.Future[None]:
        """Stage ops; the future resolves once they are durable (or fails with StorageError).

        `events` (even none: `()`) are published with the batch's (see the class); `None`
        asks for no publishing. The future may be awaited directly: cancelling it cancels
        nothing but the wait."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._failure is not None or self._closed:
            future.set_exception(StorageError(self._refusal()))
            return future
        pending = self._pending
        size = 0
        for key, value in ops.items():
            pending[key] = value
            size += len(key) + (len(value) if value is not None else 0)
        self._pending_bytes += size
        self._pending_count += 1
        if self._pending_bytes >= self._max_pending_bytes:
            self._room.clear()
        if events is not None:
            self._announce = True
            self._events.extend(events)
        self._waiters.append(future)
        self._idle.clear()
        self._wake.set()
        return future

    async def wait_for_room(self) -> None:
        if not self._room.is_set():
            await self._room.wait()

    async def drain(self) -> None:
        """Wait until everything submitted so far is durable."""
        await self._idle.wait()

    async def checkpoint(self, dest: str) -> None:
        """A consistent, openable copy of the store in the new directory `dest`, taken while
        serving. It runs on the writer thread between two batch writes, so it holds every
        write acknowledged before it was asked for (they are written already) and no half of
        a batch."""
        await self._writer.run(self.kv.checkpoint, dest)

    async def close(self) -> None:
        """Write what is pending, then stop the writer thread and close the store."""
        self._closed = True
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._writer.run(self.kv.close)
        self._writer.stop()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._write_pending()
            self._idle.set()

    async def _write_pending(self) -> None:
        ops, waiters, events, count = self._pending, self._waiters, self._events, self._pending_count
        size = self._pending_bytes
        announce, self._announce = self._announce, False
        self._inflight = ops
        self._pending, self._waiters, self._events = {}, [], []
        self._pending_bytes = self._pending_count = 0
        self._room.set()
        started = time.perf_counter()
        try:
            if self._failure is not None:
                raise StorageError(self._refusal())
            await self._writer.run(self._write, ops)
        except Exception as exc:  # any store failure must reach every waiter
            self._failure = self._failure or exc
            error = StorageError(f"storage write failed: {exc}")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        else:
            self._remember(ops, size)
            if self._on_commit is not None:
                self._on_commit(count, time.perf_counter() - started)
            if announce:
                self._published(events)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        finally:
            self._inflight = {}

    def _remember(self, ops: dict[bytes, bytes | None], size: int) -> None:
        """Keep a durable batch's values for `get` (see the class); deletes are kept as None."""
        if size > self._recent_limit:  # too big to keep (a restore): forget rather than go stale
            self._recent, self._older, self._recent_size = {}, {}, 0
            return
        if self._recent_size + size > self._recent_limit:
            self._older, self._recent, self._recent_size = self._recent, {}, 0
        self._recent.update(ops)
        self._recent_size += size

    def _published(self, events: Sequence[object]) -> None:
        if self._publish is None:
            return
        try:
            self._publish(events)
        except Exception:  # the node's hub contains its listeners; this guards the answers
            log.exception("publishing the events of a durable batch failed")

    def _write(self, ops: Ops) -> None:
        self.kv.write(ops, sync=self.fsync)

    def _refusal(self) -> str:
        if self._failure is not None:
            return f"store unavailable after a failed write: {self._failure}"
        return "store closed"
