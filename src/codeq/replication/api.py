"""The replication seam: how a command becomes an applied, durable outcome."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from codeq.kv.api import Ops

# Applies one command to the local state machine: returns its writes and its outcome, or
# raises a CodeqError having written nothing.
ApplyFn = Callable[[Any], tuple[Ops, Any]]


class Replicator(Protocol):
    @property
    def is_leader(self) -> bool: ...

    async def submit(self, command: Any) -> Any:
        """Apply `command` (everywhere, under replication) and return this node's outcome
        once its writes are durable."""
        ...
