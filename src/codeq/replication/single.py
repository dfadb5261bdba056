"""Single-node mode: apply at once on the event loop, answer and publish once the writes are durable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

from codeq.kv.commit import GroupCommitter
from codeq.replication.api import ApplyFn, Proposal, PublishFn, publish_nothing

OutcomeT = TypeVar("OutcomeT")


class SingleNode:
    """No consensus: this node is always the leader and the group committer is the log."""

    def __init__(
        self, apply: ApplyFn, committer: GroupCommitter, publish: PublishFn = publish_nothing
    ) -> None:
        self._apply = apply
        self._committer = committer
        self._publish = publish

    @property
    def is_leader(self) -> bool:
        return True

    async def submit(self, command: Proposal[OutcomeT]) -> OutcomeT:
        await self._committer.wait_for_room()
        ops, outcome, events = self._apply(command)
        if ops:
            written = self._committer.submit(ops)
            # Published from the write's own callback, which runs before the submitter resumes
            # and even when the submitter went away: the events of a durable write are never
            # lost, and never seen before it is durable. Published even with no events, since
            # the write may have moved the shard's next due time.
            written.add_done_callback(lambda done: self._published(done, events))
            await asyncio.shield(written)
        elif events:
            # Nothing to write (a claim that only promoted delayed tasks in memory): nothing a
            # crash could lose.
            self._publish(events)
        return command.expects(outcome)

    def _published(self, written: asyncio.Future[None], events: Sequence[object]) -> None:
        if written.cancelled() or written.exception() is not None:
            return  # not durable: the committer now refuses writes and the node is unready
        self._publish(events)
