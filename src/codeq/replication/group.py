"""One Raft group on this node: the asyncio side of replication/raft.py.

The leader merges whatever commands are waiting (up to `max_merge`) into one log entry and
keeps exactly one entry in flight (Raft-level group commit). Every replica applies committed
entries in log order on the event loop, through the same apply function as single-node
mode; the proposer answers each submitter with the outcome of its own apply. A committed
entry is durable (its journal is fsynced on a majority), so the events of its commands are
published once all of them are applied here, after their writes are handed to the committer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from codeq.core.errors import CodeqError, NotLeader, OutcomeUnknown, Unavailable
from codeq.kv.commit import GroupCommitter
from codeq.replication.api import ApplyFn, Proposal, PublishFn, publish_nothing
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import BaseCore, Callback
from codeq.replication.snapshot import (
    APPLIED_KEY,
    RESTORING_KEY,
    Snapshots,
    applied_value,
    read_applied,
    read_origin,
)

log = logging.getLogger("codeq.raft")

OutcomeT = TypeVar("OutcomeT")

_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(list[bytes]).decode


@dataclass(frozen=True, slots=True)
class GroupOptions:
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    leader_url: Callable[[str | None], str | None]  # raft address -> HTTP base URL
    # raft address -> the leader's gRPC streams by kind
    leader_streams: Callable[[str | None], dict[str, str]] = lambda address: {}
    proposal_timeout_s: float = 10.0
    max_merge: int = 128
    max_entry_bytes: int = 4 << 20
    snapshots: Snapshots | None = None
    # This group's preferred leader (raft address): a leader that is not it hands over once
    # it is caught up, so the shard groups' leaders spread over the nodes.
    preferred_leader: str | None = None
    on_restored: Callable[[], None] = lambda: None  # rebuild in-memory state after a snapshot install
    # Metrics: (commands in the entry, seconds from proposing it to its outcome) and the
    # seconds one committed entry took to apply here.
    on_decided: Callable[[int, float], None] = lambda commands, seconds: None
    on_applied: Callable[[float], None] = lambda seconds: None


class RaftGroup:
    """Implements the Replicator protocol over one `RaftCore`."""

    def __init__(
        self,
        make_core: Callable[[Callable[[int, bytes], Any]], BaseCore],
        apply: ApplyFn,
        committer: GroupCommitter,
        options: GroupOptions,
        publish: PublishFn = publish_nothing,
    ) -> None:
        self._apply = apply
        self._publish = publish
        self._committer = committer
        self._options = options
        if committer.get(RESTORING_KEY) is not None:
            self._resume_install(options.snapshots)
        self.applied = read_applied(committer)
        self.core = make_core(self._apply_entry)
        if isinstance(self.core, RaftCore):
            self.core.set_origin(read_origin(committer))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[tuple[bytes, int, asyncio.Future[object]]] = deque()
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._proposer: asyncio.Task[None] | None = None
        self._balancer: asyncio.Task[None] | None = None
        self._proposing = asyncio.Event()  # cleared while handing leadership over
        self._proposing.set()
        self.failure: BaseException | None = None
        self._in_flight = 0

    @staticmethod
    def _resume_install(snapshots: Snapshots | None) -> None:
        """A snapshot install was cut short: PySyncObj loads the same dump on the first tick
        and `Snapshots.deserialize` installs it again, whole (replication/snapshot.py)."""
        if snapshots is None or not os.path.isfile(snapshots.dump_path):
            raise Unavailable(
                "a raft snapshot install was interrupted and its dump is gone: this shard's store "
                "is incomplete; remove its store and raft journal so that it resyncs from its peers"
            )
        log.warning("a raft snapshot install was interrupted: installing %s again", snapshots.dump_path)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._options.snapshots is not None:
            self._options.snapshots.loop = self._loop
            self._options.snapshots.on_restored = self._restored
        self._thread = threading.Thread(
            target=self.core.run_ticks, args=(self._stopping,), name="raft-tick", daemon=True
        )
        self._thread.start()
        self._proposer = self._loop.create_task(self._propose_loop(), name="raft-proposer")
        if self._options.preferred_leader is not None:
            self._balancer = self._loop.create_task(self._balance(), name="raft-balance")

    async def stop(self) -> None:
        self._stopping.set()
        for task in (self._proposer, self._balancer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        for _, _, future in self._waiting:
            if not future.done():
                future.set_exception(Unavailable("node stopping"))
        self._waiting.clear()

    @property
    def failed(self) -> BaseException | None:
        snapshots = self._options.snapshots
        return self.failure or self.core.failure or (snapshots.failure if snapshots else None)

    @property
    def proposals_waiting(self) -> int:
        """Commands queued for the next entry plus those in the entry being replicated."""
        return len(self._waiting) + self._in_flight

    # -- Replicator ------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether this node may act as the one leader now (its lease: replication/lease.py).
        Writes only need `core.is_leader`: an entry commits on a majority or not at all."""
        return self.core.holds_lease and self.failed is None

    @property
    def leader_address(self) -> str | None:
        """The leader as this node knows it: not itself while it leads without a lease."""
        if self.core.is_leader and not self.is_leader:
            return None
        return self.core.leader_address

    @property
    def term_changes(self) -> int:
        return int(getattr(self.core, "term_changes", 0))

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def applied_index(self) -> int:
        """The last log index this node applied (PySyncObj's count: the same space as a
        peer's match index, no-op entries included)."""
        return self.core.applied_index

    def peer_match_indexes(self) -> dict[str, int]:
        """On the leader, each peer's raft address -> the highest entry it holds; else empty."""
        return self.core.peer_match_indexes()

    async def transfer_leadership(self, to: str | None = None, timeout_s: float = 2.0) -> str | None:
        """Hand leadership to `to` (a raft address; None: the most up-to-date connected peer)
        and wait until another node leads. Proposals wait meanwhile, so that the successor
        can hold the whole log; they go to the new leader once it is known.
        Returns the new leader's address, or None if the hand-over did not happen in time."""
        if not self.core.is_leader:
            return self.core.leader_address
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._proposing.clear()
        try:
            while loop.time() < deadline:
                if not self.core.is_leader:
                    leader = self.core.leader_address  # the new leader's first append names it
                    if leader is not None:
                        return leader
                    await asyncio.sleep(0.01)
                    continue
                # Asked again: refused while the peer lags, or while an entry waits to be
                # appended (raft.py `_do_hand_over`); elected again, this node asks again.
                self.core.hand_over(to or "")
                await asyncio.sleep(0.02)
        finally:
            self._proposing.set()
        return None if self.core.is_leader else self.core.leader_address

    def not_leader(self) -> NotLeader:
        address = self.core.leader_address
        streams = self._options.leader_streams(address)
        return NotLeader(self._options.leader_url(address), leader_streams=streams)

    async def submit(self, command: Proposal[OutcomeT]) -> OutcomeT:
        if self.failed is not None:
            raise Unavailable("this replica stopped after a failure; see its log")
        if not self.core.is_leader:
            raise self.not_leader()
        raw = self._options.encode(command)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting.append((raw, len(raw), future))
        self._wake.set()
        return command.expects(await future)

    async def _balance(self, period_s: float = 2.0) -> None:
        preferred = self._options.preferred_leader
        assert preferred is not None
        while True:
            await asyncio.sleep(period_s)
            core = self.core
            if core.is_leader and core.leader_address != preferred:
                core.hand_over(preferred)

    # -- proposing (event loop) ------------------------------------------------------------

    async def _propose_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._proposing.wait()
                await self._propose_next()

    def _take_batch(self) -> tuple[list[bytes], list[asyncio.Future[object]]]:
        raws: list[bytes] = []
        futures: list[asyncio.Future[object]] = []
        size = 0
        waiting = self._waiting
        while waiting and len(raws) < self._options.max_merge:
            raw, length, future = waiting[0]
            if raws and size + length > self._options.max_entry_bytes:
                break
            waiting.popleft()
            if future.done():  # the submitter went away
                continue
            raws.append(raw)
            futures.append(future)
            size += length
        return raws, futures

    async def _propose_next(self) -> None:
        raws, futures = self._take_batch()
        if not futures:
            return
        if not self.core.is_leader or self.failed is not None:
            _fail_all(futures, self.not_leader() if self.failed is None else Unavailable("replica failed"))
            return
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[tuple[Any, CodeqError | None]] = loop.create_future()

        def callback(result: Any, error: CodeqError | None) -> None:  # on the tick thread
            loop.call_soon_threadsafe(_settle, decided, result, error)

        done: Callback = callback
        started = time.perf_counter()
        self._in_flight = len(futures)
        self.core.propose(_encode_entry(raws), done)
        try:
            result, error = await asyncio.wait_for(decided, self._options.proposal_timeout_s)
        except TimeoutError:
            _fail_all(futures, OutcomeUnknown("raft proposal timed out; retry it idempotently"))
            return
        finally:
            self._in_flight = 0
        self._options.on_decided(len(futures), time.perf_counter() - started)
        if error is not None:
            if isinstance(error, NotLeader):
                error = self.not_leader()
            _fail_all(futures, error)
            return
        _deliver(futures, result)

    # -- applying (tick thread -> event loop) ----------------------------------------------

    def _apply_entry(self, index: int, payload: bytes) -> Any:
        """Called on the tick thread for each committed entry, in log order."""
        if index <= self.applied:
            return None  # already in the store (restart): never apply twice
        loop = self._loop
        if loop is None:
            raise RuntimeError("raft group not started")
        outcome: concurrent.futures.Future[list[object]] = concurrent.futures.Future()
        loop.call_soon_threadsafe(self._apply_on_loop, index, payload, outcome)
        return outcome.result()

    def _apply_on_loop(
        self, index: int, payload: bytes, outcome: concurrent.futures.Future[list[object]]
    ) -> None:
        try:
            started = time.perf_counter()
            outcome.set_result(self._apply_commands(index, payload))
            self._options.on_applied(time.perf_counter() - started)
        except BaseException as exc:  # the tick thread turns this into a stopped replica
            self.failure = exc
            outcome.set_exception(exc)

    def _apply_commands(self, index: int, payload: bytes) -> list[object]:
        # All submits below happen in one loop callback, so the group committer writes them
        # (and the applied index) in one atomic batch: a restart sees all of the entry or none.
        outcomes: list[object] = []
        events: list[object] = []
        self._watch(self._committer.submit({APPLIED_KEY: applied_value(index)}))
        for raw in _decode_entry(payload):
            try:
                ops, result, raised = self._apply(self._options.decode(raw))
            except CodeqError as exc:
                outcomes.append(exc)
                continue
            if ops:
                self._watch(self._committer.submit(ops))
            outcomes.append(result)
            events.extend(raised)
        self.applied = index
        self._publish_safely(events)
        return outcomes

    def _publish_safely(self, events: list[object]) -> None:
        """The entry is committed and applied: let observers see it. Whatever an observer does
        must not stop this replica (the publisher isolates each listener; this is the backstop)."""
        try:
            self._publish(events)
        except Exception:
            log.exception("publishing the events of an applied raft entry failed")

    def _restored(self, index: int) -> None:
        self.applied = index
        self._options.on_restored()

    def _watch(self, write: asyncio.Future[None]) -> None:
        write.add_done_callback(self._on_written)

    def _on_written(self, write: asyncio.Future[None]) -> None:
        if write.cancelled():
            return
        exc = write.exception()
        if exc is not None and self.failure is None:
            # The store no longer holds what the log says was applied: stop this replica.
            self.failure = exc
            self._stopping.set()
            log.critical("raft group stopped: a store write failed: %r", exc)


def _settle(
    decided: asyncio.Future[tuple[Any, CodeqError | None]], result: Any, error: CodeqError | None
) -> None:
    if not decided.done():
        decided.set_result((result, error))


def _fail_all(futures: list[asyncio.Future[object]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


def _deliver(futures: list[asyncio.Future[object]], outcomes: list[object] | None) -> None:
    if outcomes is None or len(outcomes) != len(futures):
        _fail_all(futures, OutcomeUnknown("raft entry applied without this node's outcomes"))
        return
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
