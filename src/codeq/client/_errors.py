"""The SDK's error tree: every failure the server or the network can hand back to a caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from codeq.wire.http import ErrorJSON

if TYPE_CHECKING:
    from codeq.client._models import Task


class CodeqError(Exception):
    """Base of every SDK error.

    `status` is the HTTP status the server answered with (0 when no answer arrived),
    `message` the server's `error` text, `field` the request field it names (if any), and
    `retry_after` the seconds the server asked the caller to wait (429, 503), if it said.
    """

    default_status = 0

    def __init__(
        self,
        message: str = "",
        status: int | None = None,
        *,
        field: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = self.default_status if status is None else status
        self.message = message or type(self).__name__
        self.field = field
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.status} {self.message}" if self.status else self.message


class BadRequest(CodeqError):
    """400: the request broke a rule (`field` names the offending field when the server says)."""

    default_status = 400


class BatchItemError(BadRequest):
    """One item of `create_many` was rejected; `index` is its position in the input."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class BatchIncomplete(CodeqError):
    """`create_many` failed part-way: `results` holds the outcomes of the chunks sent before
    the failure (their tasks exist), `cause` the error that stopped it."""

    def __init__(self, cause: CodeqError, results: list[Task | CodeqError]) -> None:
        super().__init__(f"batch stopped after {len(results)} items: {cause.message}", cause.status)
        self.cause = cause
        self.results = results


class Unauthorized(CodeqError):
    """401: no token, or a token the server does not accept."""

    default_status = 401


class Forbidden(CodeqError):
    """403: authenticated but not allowed (missing scope, command not allowed, not admin)."""

    default_status = 403


class NotOwner(Forbidden):
    """`not-owner`: the task is leased by another worker (this worker's lease is gone). 403
    when another worker holds it; 409 when the lease token presented names a lease that has
    since moved on (expired and claimed again, handed back, or finished)."""


class NotFound(CodeqError):
    """404: no such task in the caller's tenant."""

    default_status = 404


class ResultNotReady(NotFound):
    """404 `result not found`: the task exists but has no result yet."""


class Conflict(CodeqError):
    """409: the request contradicts the task's current state."""

    default_status = 409


class NotInProgress(Conflict):
    """409 `not-in-progress`: the task is no longer leased (finished, requeued or expired)."""


class TaskCancelled(Conflict):
    """409 `task cancelled`: an admin cancelled the task while this worker held it; the call
    finished it as CANCELLED. Drop the work: the task never comes back."""


class PayloadTooLarge(CodeqError):
    """413: the body, payload or batch exceeds a server limit."""

    default_status = 413


class RateLimited(CodeqError):
    """429: too many requests; `retry_after` says how long to wait."""

    default_status = 429


class ServerError(CodeqError):
    """5xx: the server failed; retrying later may help."""

    default_status = 500


class Unavailable(ServerError):
    """503: the server cannot serve now (storage trouble, no leader); see `retry_after`."""

    default_status = 503


class ConnectionFailed(CodeqError):
    """No HTTP answer: the connection failed or timed out.

    `request_sent` is False only when the request certainly never reached the server
    (connect failure), which makes any request safe to resend.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message, 0)
        self.request_sent = request_sent


_BY_STATUS: dict[int, type[CodeqError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}
# The server's error texts are part of its wire contract (spec 02 §1.3); these pick a
# narrower class that callers need to tell apart from others with the same status.
_BY_TEXT: dict[tuple[int, str], type[CodeqError]] = {
    (403, "not-owner"): NotOwner,
    (409, "not-owner"): NotOwner,  # a lease token naming a lease that has moved on
    (404, "result not found"): ResultNotReady,
    (409, "not-in-progress"): NotInProgress,
    (409, "task cancelled"): TaskCancelled,
}
_decode_error = msgspec.json.Decoder(ErrorJSON).decode


def error_from_response(status: int, body: bytes, retry_after: str | None = None) -> CodeqError:
    """The typed error for a non-success answer: by status, then by the server's `error` text."""
    message, field = _error_text(body)
    cls = _BY_TEXT.get((status, message)) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else CodeqError
    return cls(message or f"HTTP {status}", status, field=field, retry_after=_seconds(retry_after))


def error_from_text(message: str) -> CodeqError:
    """The typed error for a per-item failure that carries only the server's text: an item of a
    batch answer, or a stream ack (spec 02 §4.9, spec 07 §6). Unknown texts are request errors."""
    cls = _BY_ITEM_TEXT.get(message)
    if cls is None and " exceeds " in message and message.endswith(" bytes"):
        cls = PayloadTooLarge  # `payload exceeds 65536 bytes`, `result exceeds …`
    elif cls is None:
        transient = message.startswith(_TRANSIENT_PREFIXES) or "not leader" in message
        cls = Unavailable if transient else BadRequest
    return cls(message)


# Ack texts of the stream servers (spec 07 §6): the reference's and codeq's spellings.
_BY_ITEM_TEXT: dict[str, type[CodeqError]] = {
    "not-owner": NotOwner,
    "not-in-progress": NotInProgress,
    "task cancelled": TaskCancelled,
    "not-found": NotFound,
    "not found": NotFound,
    "task not found": NotFound,
    "result not found": ResultNotReady,
    "missing scope": Forbidden,
    "event type not allowed": Forbidden,
}
# Storage and cluster trouble (`storage write failed: …`, `store closed`, `raft apply: …`):
# worth retrying.
_TRANSIENT_PREFIXES = ("storage", "store ", "raft", "pebble", "no leader")


def _error_text(body: bytes) -> tuple[str, str]:
    try:
        error = _decode_error(body)
    except msgspec.DecodeError:
        # Not our JSON (a proxy's page, an empty body): keep a short, printable excerpt.
        return body[:200].decode("utf-8", "replace").strip(), ""
    return error.error, error.field


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        return None  # an HTTP-date: codeq never sends one, so treat it as unspecified
    return max(value, 0.0)
