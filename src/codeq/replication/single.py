"""Single-node mode: apply at once on the event loop, answer when the writes are durable."""

from __future__ import annotations

from typing import Any

from codeq.kv.commit import GroupCommitter
from codeq.replication.api import ApplyFn


class SingleNode:
    """No consensus: this node is always the leader and the group committer is the log."""

    def __init__(self, apply: ApplyFn, committer: GroupCommitter) -> None:
        self._apply = apply
        self._committer = committer

    @property
    def is_leader(self) -> bool:
        return True

    async def submit(self, command: Any) -> Any:
        await self._committer.wait_for_room()
        ops, outcome = self._apply(command)
        if ops:
            await self._committer.submit(ops)
        return outcome
