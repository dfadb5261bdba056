"""The one error tree: every failure a caller can see, each with a stable code."""

from __future__ import annotations

from collections.abc import Callable

FIELD = "{field}"  # where a message names its field: each transport puts its own name there


class CodeqError(Exception):
    """Root of every error codeq raises on purpose; `code` is stable, `text()` is the wire text.

    `field` is a neutral field id (snake_case: `max_attempts`, `delay_seconds`); a message may
    name it as `{field}`, and each transport renders it in its own terms (HTTP JSON
    `maxAttempts`, the protobuf field `max_attempts`). `message` names it by its id.
    """

    code = "internal"

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        self.template = message or self.code
        self.field = field
        self.message = self.text(str)
        super().__init__(self.message)

    def text(self, name_of: Callable[[str], str]) -> str:
        """The message, with its field named by `name_of(field id)`."""
        if self.field is None or FIELD not in self.template:
            return self.template
        return self.template.replace(FIELD, name_of(self.field))


class InvalidInput(CodeqError):
    """The request is malformed or breaks a documented rule."""

    code = "invalid_argument"


class Unprocessable(InvalidInput):
    """Well-formed, but a field breaks a validation rule (HTTP 422 with `field`; topics)."""

    code = "unprocessable"


class PayloadTooLarge(CodeqError):
    """A body, payload or batch exceeds a configured limit."""

    code = "payload_too_large"


class Unauthenticated(CodeqError):
    """No credentials, or credentials that no validator accepts."""

    code = "unauthenticated"


class Forbidden(CodeqError):
    """Authenticated, but not allowed to do this."""

    code = "permission_denied"


class NotFound(CodeqError):
    """No such task, result or subscription in the caller's tenant."""

    code = "not_found"


class NotOwner(CodeqError):
    """The task is leased by another worker."""

    code = "not_owner"

    def __init__(self, message: str = "not-owner") -> None:
        super().__init__(message)


class StaleLease(NotOwner):
    """The lease token presented names an earlier lease of the task: another claim (or the
    end of the task) has fenced it off. Answered as a conflict, unlike NotOwner's refusal."""

    code = "stale_lease"


class WrongState(CodeqError):
    """The task is not in a state that allows the operation (e.g. not IN_PROGRESS)."""

    code = "failed_precondition"

    def __init__(self, message: str = "not-in-progress") -> None:
        super().__init__(message)


class TaskCancelled(WrongState):
    """The task was cancelled while leased: the worker's call finished it as CANCELLED; drop it."""

    def __init__(self) -> None:
        super().__init__("task cancelled")


class Conflict(CodeqError):
    """A concurrent or contradictory write (e.g. an idempotency key reused with another body)."""

    code = "conflict"


class NotLeader(CodeqError):
    """This node cannot accept writes; `leader_url` is where to send them, if known."""

    code = "not_leader"

    def __init__(
        self, leader_url: str | None = None, *, leader_streams: dict[str, str] | None = None
    ) -> None:
        super().__init__("not leader")
        self.leader_url = leader_url
        # The leader's gRPC streams by kind ("producer", "worker"): grpc://host:port.
        self.leader_streams = leader_streams or {}


class Unavailable(CodeqError):
    """The store or the cluster cannot serve the request right now; retrying may help."""

    code = "unavailable"


class OutcomeUnknown(Unavailable):
    """A write was submitted but its outcome is unknown; an idempotent retry resolves it."""

    code = "outcome_unknown"


class StorageError(CodeqError):
    """The embedded store failed."""

    code = "storage_error"


class RateLimited(CodeqError):
    """A token bucket is empty; `retry_after_seconds` (>= 1) says when one token will be back."""

    code = "resource_exhausted"

    def __init__(self, scope: str, operation: str, retry_after_seconds: int) -> None:
        super().__init__("rate limit exceeded")
        self.scope = scope
        self.operation = operation
        self.retry_after_seconds = retry_after_seconds
