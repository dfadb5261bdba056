"""Handles on shards another process owns: a link to that process's address, and a
`ShardHandle` over it that the services use exactly like a local shard."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar, cast

from codeq.cluster import codec
from codeq.cluster.channel import ANSWER, READ, READY, REFUSED, SUBMIT, Channel, Message, connect
from codeq.core.errors import CodeqError, OutcomeUnknown, Unavailable
from codeq.core.model import ResultRecord, Task
from codeq.core.names import command_key
from codeq.engine import commands as c
from codeq.engine.commands import encode_command
from codeq.engine.outcomes import BatchApplied, Completed
from codeq.service.node import CLAIM_TURN
from codeq.service.shard_reads import READS
from codeq.service.waiters import NEVER, TAKERS_WINDOW_MS

log = logging.getLogger("codeq.cluster")

OutcomeT = TypeVar("OutcomeT")
# (tenant, command key, count, whether claims of the owning process take from that queue)
ReadyFeed = Callable[[str, str, int, bool], None]
RETRY_SECONDS = 0.05  # the first wait before connecting again; doubled up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 2.0
# Reads a shard process serves besides the engine reads: the answer types.
OTHER_READS: dict[str, Any] = {"checkpoint": None, "metrics": bytes, "links": bool}


class PeerLink:
    """The connection to the process at `address`. It connects in the background (the peer
    may still be starting) and connects again, with backoff, whenever the connection drops:
    while it is down, what was in flight failed as outcome unknown, new calls are refused as
    unavailable and the node is not ready. A peer process that died stays unreachable; the
    supervisor stops the node (ADR 0009)."""

    def __init__(self, address: str, on_ready: ReadyFeed) -> None:
        self.address = address
        self.on_ready = on_ready
        self._channel: Channel | None = None
        self._waiting: dict[int, tuple[asyncio.Future[bytes], str]] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Task[None] | None = None
        self.lost = False  # the connection dropped and is not back yet
        self._closing = False
        self.forwarded = 0  # commands sent over this link (each coalesced completion counts)
        self.calls = 0  # messages sent over this link (coalesced completions: one)
        # The same by (kind, cause), and the tasks forwarded claims got by cause: what crosses.
        self.forwarded_by: Counter[tuple[str, str]] = Counter()
        self.claimed_across: Counter[str] = Counter()
        self.connections = 0  # connections made so far: a new one may have missed ready feed

    @property
    def connected(self) -> bool:
        return self._channel is not None and not self._channel.closed

    def count(self, command: c.Command[Any]) -> str:
        """Count `command` as forwarded; returns its cause (for a claim: which turn sent it)."""
        cause = _cause_of(command)
        self.forwarded += 1
        self.forwarded_by[(_kind_of(command), cause)] += 1
        return cause

    def start(self) -> None:
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self, backoff: bool = False) -> None:
        """Connect, retrying: every RETRY_SECONDS while the peer starts (a node is ready only
        once every link is up, so no slower), with backoff after a drop."""
        delay = RETRY_SECONDS
        while True:
            try:
                channel: Channel | None = await connect(self.address, self._make_channel)
            except OSError:
                channel = None  # the peer is not listening (yet, or again)
            if channel is None or channel.closed:  # (or it dropped the connection at once)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS) if backoff else delay
                continue
            self._channel = channel
            self.connections += 1
            self.lost = False
            log.log(logging.INFO if self.connections > 1 else logging.DEBUG, "linked to %s", self.address)
            return

    def _make_channel(self) -> Channel:
        return Channel(self._message, self._lost)

    async def close(self) -> None:
        self._closing = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._channel is not None:
            self._channel.close()

    def call(self, kind: int, body: Any, what: str) -> asyncio.Future[bytes]:
        channel = self._channel
        if channel is None or channel.closed:
            raise Unavailable(f"the process owning {what} is not reachable")
        request_id = next(self._ids)
        self.calls += 1
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (future, what)
        channel.send(kind, request_id, body)
        return future

    def _message(self, message: Message) -> None:
        kind, request_id, body = message
        if kind == READY:
            for tenant, key, count, takers in body:
                self.on_ready(tenant, key, count, takers)
            return
        waiting = self._waiting.pop(request_id, None)
        if waiting is None or waiting[0].done():
            return
        if kind == ANSWER:
            waiting[0].set_result(body)
        elif kind == REFUSED:
            waiting[0].set_exception(codec.decode_error(body))

    def _lost(self, channel: Channel) -> None:
        if channel is not self._channel:
            return  # a connection that was never this link's current one
        self.lost = True
        waiting, self._waiting = self._waiting, {}
        for future, what in waiting.values():
            if not future.done():
                # It may have applied before going away: an idempotent retry settles it.
                future.set_exception(OutcomeUnknown(f"the process owning {what} went away"))
        if not self._closing:
            log.error("lost the link to the shard process at %s; connecting again", self.address)
            self._connecting = asyncio.get_running_loop().create_task(self._connect(backoff=True))


class RemoteShard:
    """Shard `number`, owned by the process at the end of `link`."""

    def __init__(self, number: int, link: PeerLink) -> None:
        self.number = number
        self.link = link
        self._what = f"shard {number}"
        # What the ready feed says about this shard's queues: a claim is forwarded only where
        # a task may be ready. Unknown tenants may have some; a short forwarded claim marks
        # its queues empty unless the feed spoke of the tenant meanwhile.
        self._empty: set[tuple[str, str]] = set()
        self._empty_tenants: set[str] = set()
        self._heard: dict[str, int] = {}
        # Queues (tenant -> command key -> when heard; NEVER: not taken) that the owning
        # process's own claims take from, as its feed said: claims here do not start there
        # (`Node.claim_order`) while that was said within TAKERS_WINDOW_MS; else they may.
        self._takers: dict[str, dict[str, int]] = {}
        # Completions submitted in one loop turn cross as one Batch (HTTP posts each result on
        # whichever pooled connection is free, so about half of them are forwarded).
        self._completes: list[tuple[c.Complete, asyncio.Future[Completed]]] = []

    @property
    def is_leader(self) -> bool:
        return self.link.connected

    def heard_ready(self, tenant: str, key: str, takers: bool = False, now_ms: int = 0) -> None:
        """The feed spoke of a queue there: it has ready tasks, and whether the owning
        process's own claims take from it (as of `now_ms`)."""
        self._heard[tenant] = self._heard.get(tenant, 0) + 1
        self._empty.discard((tenant, key))
        self._empty_tenants.discard(tenant)
        self._takers.setdefault(tenant, {})[key] = now_ms if takers else NEVER

    def needs_takers(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool:
        """True unless the feed said lately that the owner's claims take every queue asked
        for (a claim for any queue: every queue the feed spoke of, and of at least one)."""
        heard = self._takers.get(tenant)
        if not heard:
            return True
        since = now_ms - TAKERS_WINDOW_MS
        keys = heard.keys() if commands is None else [command_key(name) for name in commands]
        return not all(heard.get(key, NEVER) >= since for key in keys)

    def may_have_ready(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool:
        if tenant in self._empty_tenants:
            return False
        if commands is None:
            return True
        return any((tenant, command_key(name)) not in self._empty for name in commands)

    async def submit(self, command: c.Command[OutcomeT]) -> OutcomeT:
        if isinstance(command, c.Complete):
            return cast(OutcomeT, await self._complete(command))  # a Complete's outcome
        heard = self._heard.get(command.tenant, 0) if isinstance(command, c.Claim) else 0
        cause = self.link.count(command)
        raw = await self.link.call(SUBMIT, encode_command(command), self._what)  # type: ignore[arg-type]
        outcome = command.expects(codec.decode_outcome(type(command), raw))
        if isinstance(command, c.Claim):
            got = len(getattr(outcome, "tasks", ()))
            self.link.claimed_across[cause] += got
            self._after_claim(command, got, heard)
        return outcome

    def _complete(self, command: c.Complete) -> asyncio.Future[Completed]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completed] = loop.create_future()
        if not self._completes:
            loop.call_soon(self._send_completes)
        self._completes.append((command, future))
        return future

    def _send_completes(self) -> None:
        pending, self._completes = self._completes, []
        commands: list[c.Create | c.Complete] = [command for command, _ in pending]
        one: c.Command[Any] = (
            commands[0] if len(commands) == 1 else c.Batch(now_ms=commands[0].now_ms, items=commands)
        )
        try:
            answer = self.link.call(SUBMIT, encode_command(one), self._what)  # type: ignore[arg-type]
        except CodeqError as exc:
            answer = asyncio.get_running_loop().create_future()
            answer.set_exception(exc)
        else:
            for command in commands:  # each is one command here, as it would be in its own shard
                self.link.count(command)
        answer.add_done_callback(lambda done: _settle(one, pending, done))

    def _after_claim(self, claim: c.Claim, got: int, heard: int) -> None:
        if got >= claim.count or self._heard.get(claim.tenant, 0) != heard:
            return
        if claim.commands is None:
            self._empty_tenants.add(claim.tenant)
        else:
            self._empty.update((claim.tenant, command_key(name)) for name in claim.commands)

    async def read(self, name: str, *arguments: Any) -> Any:
        """A read of `service/shard_reads.py` (or "checkpoint", "metrics"), in the owning process."""
        read = READS.get(name)
        raw = await self.link.call(READ, (name, list(arguments)), self._what)
        return codec.decode(raw, read.answer if read is not None else OTHER_READS[name])

    async def find_task(self, task_id: str, tenant: str) -> Task:
        task: Task = await self.read("find_task", task_id, tenant)
        return task

    async def queue_counts(self, tenant: str, key: str) -> tuple[int, int, int, int]:
        counts: tuple[int, int, int, int] = await self.read("queue_counts", tenant, key)
        return counts

    async def find_result(self, task_id: str) -> ResultRecord | None:
        record: ResultRecord | None = await self.read("find_result", task_id)
        return record


def _kind_of(command: c.Command[Any]) -> str:
    """claim / claim_batch (more than one task asked for), batch_create, batch_complete, or
    the command's own name (complete, heartbeat, create, ...)."""
    if isinstance(command, c.Claim):
        return "claim" if command.count <= 1 else "claim_batch"
    if isinstance(command, c.Batch):
        return "batch_" + type(command.items[0]).__name__.lower() if command.items else "batch"
    return type(command).__name__.lower()


def _cause_of(command: c.Command[Any]) -> str:
    """A claim: "remote_first" (the turn that starts at another shard) or "local_short" (the
    own shard was tried first, or skipped as empty, and came short). Anything else goes to
    its task's or key's shard: "owner"."""
    if not isinstance(command, c.Claim):
        return "owner"
    return "remote_first" if CLAIM_TURN.get() == "remote_first" else "local_short"


def _settle(
    sent: c.Command[Any],
    pending: list[tuple[c.Complete, asyncio.Future[Completed]]],
    done: asyncio.Future[bytes],
) -> None:
    """Hand each completion its own outcome (or refusal) out of the answer to what was sent."""
    exc = None if done.cancelled() else done.exception()
    if done.cancelled() or exc is not None:
        error = exc if exc is not None else OutcomeUnknown("the forwarded completion was cancelled")
        outcomes: list[object] = [error] * len(pending)
    else:
        try:
            outcome = codec.decode_outcome(type(sent), done.result())
        except Exception as exc:  # an answer that does not decode: no caller may wait forever
            outcomes = [OutcomeUnknown(f"the answer to a forwarded completion did not decode: {exc!r}")]
            outcomes *= len(pending)
        else:
            outcomes = list(outcome.items) if isinstance(outcome, BatchApplied) else [outcome]
    for (_, future), item in zip(pending, outcomes, strict=True):
        if future.done():
            continue  # its caller went away
        if isinstance(item, BaseException):
            future.set_exception(item)
        else:
            future.set_result(cast(Completed, item))
