"""The replication seam: how a command becomes an applied, durable, then observable outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from codeq.kv.api import Ops

OutcomeT = TypeVar("OutcomeT")
OutcomeT_co = TypeVar("OutcomeT_co", covariant=True)


class Proposal(Protocol[OutcomeT_co]):
    """A command, opaque to replication except for the type of outcome its apply returns."""

    def expects(self, outcome: object) -> OutcomeT_co: ...


# Applies one command to the local state machine: returns its writes, its outcome and its
# events, or raises a CodeqError having written nothing and raised no event.
ApplyFn = Callable[[object], tuple[Ops, object, Sequence[object]]]

# Delivers the events of applies whose writes are durable, in apply order. It must not raise
# (the node's listener hub isolates every listener); a replicator never calls it for a
# rejected command.
PublishFn = Callable[[Sequence[object]], None]


def publish_nothing(events: Sequence[object]) -> None:
    """For replicators nobody observes (tests, tools)."""


class Replicator(Protocol):
    @property
    def is_leader(self) -> bool: ...

    async def submit(self, command: Proposal[OutcomeT]) -> OutcomeT:
        """Apply `command` (everywhere, under replication) and return this node's outcome
        once its writes are durable; its events are published no earlier than that."""
        ...
