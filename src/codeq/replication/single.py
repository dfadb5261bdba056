"""Single-node mode: apply at once on the event loop, answer and publish once the writes are durable."""

from __future__ import annotations

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
        # The committer publishes the events of a whole batch once it is durable, before it
        # answers any submitter, and even when a submitter went away: the events of a durable
        # write are never lost, and never seen before it is durable. A write with no events is
        # published too (empty), since it may have moved the shard's next due time.
        committer.publish_to(publish)

    @property
    def is_leader(self) -> bool:
        return True

    async def submit(self, command: Proposal[OutcomeT]) -> OutcomeT:
        committer = self._committer
        if not committer.has_room:
            await committer.wait_for_room()
        ops, outcome, events = self._apply(command)
        if ops:
            # Awaited without a shield: a cancelled submitter cancels only its own wait; the
            # write and its events go ahead (the committer skips a cancelled future).
            await committer.submit(ops, events)
        elif events:
            # Nothing to write (a claim that only promoted delayed tasks in memory): nothing a
            # crash could lose.
            self._publish(events)
        return command.expects(outcome)
