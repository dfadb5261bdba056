"""Who is calling, decided once at the edge, and the pure checks the services apply to it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from codeq.core.errors import Forbidden, InvalidInput

SCOPE_CLAIM = "codeq:claim"
SCOPE_HEARTBEAT = "codeq:heartbeat"
SCOPE_ABANDON = "codeq:abandon"
SCOPE_NACK = "codeq:nack"
SCOPE_RESULT = "codeq:result"
SCOPE_SUBSCRIBE = "codeq:subscribe"
SCOPE_ADMIN = "codeq:admin"
# May create tasks of any command; without it, a producer token's `eventTypes` list the commands it
# may create (issue 17: a producer token alone used to create any command of its tenant).
SCOPE_PRODUCE = "codeq:produce"
# An operator power across tenants (a backup copies every tenant's data): a tenant's admin lacks it.
SCOPE_OPERATOR = "codeq:operator"
WORKER_SCOPES = (SCOPE_CLAIM, SCOPE_HEARTBEAT, SCOPE_ABANDON, SCOPE_NACK, SCOPE_RESULT, SCOPE_SUBSCRIBE)
WILDCARD = "*"
MAX_WORKER_ID_LENGTH = 128
MAX_INSTANCES = 256  # worker-instance principals remembered per principal (`instance`)


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant: str
    scopes: frozenset[str]
    event_types: tuple[str, ...]
    is_admin: bool
    is_worker: bool
    expires_at_ms: int | None = None  # when the token behind it lapses; None: never
    # Derived once so the per-request checks are set lookups: commands are case-insensitive.
    _wildcard: bool = field(init=False, repr=False, compare=False)
    _allowed: frozenset[str] = field(init=False, repr=False, compare=False)
    # The principals of this one's worker instances by owner (`instance`), made once each:
    # a memoised principal (static tokens) serves every request of its workers.
    _instances: dict[str, Principal] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_wildcard", WILDCARD in self.event_types)
        object.__setattr__(self, "_allowed", frozenset(e.lower() for e in self.event_types))

    def expired(self, now_ms: int) -> bool:
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms

    def instance(self, worker_id: str | None) -> Principal:
        """The principal whose subject owns the leases of one worker instance (spec 03 gap 8).

        The reference lets a gRPC client name any owner and uses the bare subject over HTTP.
        Here a worker id other than the token's subject names an instance of that subject,
        `<subject>/<worker_id>`: one token can run several workers that cannot act on each
        other's leases, and a worker id never reaches beyond its own subject's (or tenant's)
        leases. An id already of that form is taken as it is, so a client can reuse the id the
        server returned.
        """
        worker_id = (worker_id or "").strip()
        if len(worker_id) > MAX_WORKER_ID_LENGTH or not worker_id.isprintable():
            raise InvalidInput("invalid worker id", field="worker_id")
        subject = self.subject
        if not worker_id or worker_id == subject or worker_id.startswith(subject + "/"):
            owner = worker_id or subject
        else:
            owner = f"{subject}/{worker_id}"
        if owner == subject:
            return self
        instances = self._instances
        if instances is None:
            instances = {}
            object.__setattr__(self, "_instances", instances)
        found = instances.get(owner)
        if found is None:
            if len(instances) >= MAX_INSTANCES:  # worker ids are the caller's: bound the memo
                instances.clear()
            found = instances[owner] = dataclasses.replace(self, subject=owner)
        return found

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden("missing scope")

    def require_admin(self) -> None:
        # 403, not the reference's 401: the caller is authenticated, just not allowed (spec 03 gap 11).
        if not self.is_admin:
            raise Forbidden("unauthorized. Admin only")

    def require_operator(self) -> None:
        if self.is_worker or SCOPE_OPERATOR not in self.scopes:
            raise Forbidden("operator only: needs the codeq:operator scope")

    def require_produce(self, command: str) -> None:
        """A producer may create `command`: by the produce scope or its `eventTypes` allow-list."""
        if SCOPE_PRODUCE in self.scopes or (self.event_types and self.allows_command(command)):
            return
        raise Forbidden("command not allowed: needs the codeq:produce scope or the command in eventTypes")

    def allows_command(self, command: str) -> bool:
        return self._wildcard or command.lower() in self._allowed

    def worker_commands(self, requested: Sequence[str] | None) -> list[str] | None:
        """The commands a claim may take from; None means every command of the tenant.

        An explicit request must be a subset of the token's event types; an empty one means
        "whatever the token allows", in the token's declared order (spec 01 gap 11).
        """
        if not self.event_types:
            raise Forbidden("missing eventTypes")
        if requested:
            for command in requested:
                if not self.allows_command(command):
                    raise Forbidden("event type not allowed")
            return list(requested)
        return None if self._wildcard else list(self.event_types)
