"""Serves this process's shard to the other shard processes: their commands, their reads,
and a feed of which queues just got ready tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from codeq.cluster import codec
from codeq.cluster.channel import ANSWER, READ, READY, REFUSED, SUBMIT, Channel, Message, listen
from codeq.engine import commands as c
from codeq.engine.commands import decode_command
from codeq.engine.outcomes import Claimed
from codeq.service.node import Shard

log = logging.getLogger("codeq.cluster")

Read = Callable[..., Awaitable[Any]]
# How often the feed also restates, for every queue with ready tasks here, whether this
# process's claims take from it: peers trust that for TAKERS_WINDOW_MS, and a queue whose
# takers here went away, or took every new task without a word on the feed, stays known.
ANNOUNCE_SECONDS = 0.25


class ShardServer:
    """Listens at `address` for peers; `reads` names the reads they may ask for."""

    def __init__(self, address: str, shard: Shard, reads: dict[str, Read]) -> None:
        self.address = address
        self.shard = shard
        self.reads = reads
        self._server: asyncio.Server | None = None
        self._channels: set[Channel] = set()
        self._ready: dict[tuple[str, str], int] = {}
        self._pending: set[asyncio.Future[Any]] = set()
        self.served = 0  # commands submitted here on behalf of peers
        self.offered = 0  # ready tasks offered to peers by the feed
        # Whether claims of this process take from a queue (tenant, command key); the feed
        # tells peers, which start claims here only for queues nobody here takes (ADR 0009).
        self.takers: Callable[[str, str], bool] = lambda tenant, key: False

    async def start(self) -> None:
        self._server = await listen(self.address, self._channel)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for channel in list(self._channels):
            channel.close()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _channel(self) -> Channel:
        channel = Channel(
            lambda message: self._request(channel, message), self._channels.discard, self._linked
        )
        self._channels.add(channel)
        return channel

    def _linked(self, channel: Channel) -> None:
        """A peer (re)linked: tell it of every queue with ready tasks here, since the feed it
        missed while unlinked may have been what its waiting claims were waiting for."""
        ready = self._ready_queues(counts=True)
        if ready:
            channel.send(READY, 0, ready)

    async def announce(self) -> int | None:
        """A background tick (every ANNOUNCE_SECONDS): restate to every peer whether this
        process's claims take from each queue with ready tasks here (a count of 0 wakes no
        claim there; the feed proper offered them when they became ready)."""
        ready = self._ready_queues(counts=False) if self._channels else []
        for channel in self._channels if ready else ():
            channel.send(READY, 0, ready)
        return None  # (a Runner's tick: no particular next time)

    def _ready_queues(self, counts: bool) -> list[tuple[str, str, int, bool]]:
        queues = self.shard.engine.index.queues.values()
        return [
            (q.tenant, q.cmd_key, q.ready if counts else 0, self.takers(q.tenant, q.cmd_key))
            for q in queues
            if q.ready > 0
        ]

    def _request(self, channel: Channel, message: Message) -> None:
        kind, request_id, body = message
        if kind == SUBMIT:
            self.served += 1
            work: Awaitable[Any] = self._submit(decode_command(body))
            encode: Callable[[Any], bytes] = codec.encode_outcome
        elif kind == READ:
            name, arguments = body
            read = self.reads.get(name)
            if read is None:
                channel.send(REFUSED, request_id, codec.encode_error(LookupError(f"no read {name!r}")))
                return
            work, encode = read(*arguments), codec.encode
        else:
            channel.close()  # not a peer speaking this protocol
            return
        future = asyncio.ensure_future(work)
        self._pending.add(future)
        future.add_done_callback(lambda done: self._answer(channel, request_id, done, encode))

    async def _submit(self, command: c.Command[Any]) -> Any:
        if isinstance(command, c.Claim) and _follower_has_nothing(self.shard, command):
            return Claimed([])
        return await self.shard.submit(command)

    def _answer(
        self, channel: Channel, request_id: int, done: asyncio.Future[Any], encode: Callable[[Any], bytes]
    ) -> None:
        self._pending.discard(done)
        if channel.closed:
            return
        if done.cancelled():
            channel.send(REFUSED, request_id, codec.encode_error(RuntimeError("cancelled")))
        elif (exc := done.exception()) is not None:
            channel.send(REFUSED, request_id, codec.encode_error(exc))
        else:
            channel.send(ANSWER, request_id, encode(done.result()))

    def unclaimed(self, tenant: str, command_key: str, count: int) -> None:
        """`Waiters.unclaimed`: tell every peer that a queue of this shard has ready tasks that
        no claim waiting here was woken for, so that a long-poll claim waiting there is answered
        as soon as a task is ready here (and none is taken away from a claim waiting here).
        The counts of one loop turn go out together."""
        if not self._channels:
            return
        if not self._ready:
            asyncio.get_running_loop().call_soon(self._push_ready)
        key = (tenant, command_key)
        self._ready[key] = self._ready.get(key, 0) + count
        self.offered += count

    def _push_ready(self) -> None:
        ready, self._ready = self._ready, {}
        body = [(tenant, key, count, self.takers(tenant, key)) for (tenant, key), count in ready.items()]
        for channel in self._channels:
            channel.send(READY, 0, body)


def _follower_has_nothing(shard: Shard, claim: c.Claim) -> bool:
    """As a claim in one process skips a follower's replica with nothing ready: the group
    refuses a claim (the worker sent to its leader) only where a task waits."""
    return not shard.is_leader and not shard.may_have_ready(claim.tenant, claim.commands, claim.now_ms)
