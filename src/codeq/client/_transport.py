"""The seam between the SDK's classes and the wire: the operations a Producer and Worker need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from codeq.client._errors import CodeqError
from codeq.client._models import Result, ResultSpec, Task, TaskSpec

# A URL with this scheme names a node's gRPC streams (`codeq.client._connect`).
GRPC_SCHEME = "grpc://"
GRPCS_SCHEME = "grpcs://"  # the same over TLS


class Transport(Protocol):
    """One connection to a codeq node, speaking some wire protocol.

    Every method raises `codeq.client.CodeqError` subclasses, never protocol-specific
    exceptions, so retry decisions above the transport do not depend on the wire. A transport
    makes one attempt per call (following leader redirects is part of that attempt).
    """

    @property
    def base_url(self) -> str: ...

    async def create(self, spec: TaskSpec) -> Task:
        """Create one task; an idempotent replay returns the earlier task with `replayed` set."""
        ...

    async def create_batch(self, specs: Sequence[TaskSpec]) -> list[Task | CodeqError]:
        """Create up to the server's batch limit at once; each item succeeds or fails alone."""
        ...

    async def get_task(self, task_id: str) -> Task: ...

    async def get_result(self, task_id: str, wait_seconds: int) -> Result:
        """The result, waiting up to `wait_seconds` for it (the server caps the wait)."""
        ...

    async def claim(self, commands: Sequence[str], lease_seconds: int, wait_seconds: int) -> Task | None:
        """Lease one task of `commands`, waiting up to `wait_seconds`; None when none came."""
        ...

    async def claim_many(
        self, commands: Sequence[str], lease_seconds: int, wait_seconds: int, count: int
    ) -> list[Task]:
        """Lease up to `count` tasks of `commands`, waiting up to `wait_seconds` for the first;
        empty when none came."""
        ...

    # The calls about a claimed task take its `lease_token` (`Task.lease_token`; 0: none):
    # given, the server refuses them with `NotOwner` once that claim's lease is gone.

    async def heartbeat(self, task_id: str, extend_seconds: int, lease_token: int = 0) -> None: ...

    async def nack(self, task_id: str, delay_seconds: int | None, reason: str, lease_token: int = 0) -> bool:
        """Hand a failed delivery back; True when the task was dead-lettered instead."""
        ...

    async def abandon(self, task_id: str, lease_token: int = 0) -> None: ...

    async def submit_result(
        self, task_id: str, status: str, result: Any, error: str, lease_token: int = 0
    ) -> Result: ...

    async def submit_results(self, items: Sequence[ResultSpec]) -> list[Result | CodeqError]:
        """Submit many outcomes at once; one answer per item, in order, each accepted or refused alone."""
        ...

    async def aclose(self) -> None: ...
