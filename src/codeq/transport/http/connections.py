"""The open HTTP connections: admission under the cap, eviction of the longest-quiet one, draining."""

from __future__ import annotations

import asyncio
from typing import Protocol


class Connection(Protocol):
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...
    def check_deadline(self, now: float) -> None: ...


class ConnectionRegistry:
    """Every open connection, split into busy (a request in flight) and quiet ones.

    At the cap a new connection evicts the connection that has been quiet longest (idle
    keep-alive, or still sending its head) instead of being refused: an attacker holding
    connections open cannot lock out a client that sends a request, and the cap keeps the
    process below its descriptor limit, so accepting never fails for lack of descriptors.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._quiet: dict[Connection, None] = {}  # insertion order: quiet longest first
        self._busy: set[Connection] = set()
        self._empty: asyncio.Event | None = None
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._quiet) + len(self._busy)

    def admit(self, conn: Connection) -> bool:
        if len(self) >= self.cap:
            if not self._quiet:
                return False
            oldest = next(iter(self._quiet))
            self.remove(oldest)
            self.evicted += 1
            oldest.abort()
        self._quiet[conn] = None
        return True

    def busy(self, conn: Connection) -> None:
        self._quiet.pop(conn, None)
        self._busy.add(conn)

    def quiet(self, conn: Connection) -> None:
        self._busy.discard(conn)
        self._quiet[conn] = None

    def remove(self, conn: Connection) -> None:
        self._quiet.pop(conn, None)
        self._busy.discard(conn)
        if self._empty is not None and not self:
            self._empty.set()

    def sweep(self, now: float) -> None:
        """Let every connection act on a deadline that has passed (loop time `now`)."""
        for conn in [*self._quiet, *self._busy]:
            conn.check_deadline(now)

    def shutdown_all(self) -> None:
        for conn in [*self._quiet, *self._busy]:
            conn.shutdown()

    def abort_all(self) -> None:
        for conn in [*self._quiet, *self._busy]:
            self.remove(conn)
            conn.abort()

    async def drained(self, timeout: float) -> bool:
        """True when every connection closed within `timeout` seconds."""
        if not self:
            return True
        self._empty = asyncio.Event()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True
