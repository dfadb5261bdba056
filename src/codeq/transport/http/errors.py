"""The one mapping from errors to HTTP replies (spec 02 §7, with the fixes of its gap 3)."""

from __future__ import annotations

import logging

import msgspec

from codeq.core import errors as e
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.fields import error_field, error_text
from codeq.wire.http import ErrorJSON, RateLimitedJSON

log = logging.getLogger("codeq.http")

_STATUS: dict[type[e.CodeqError], int] = {
    e.InvalidInput: 400,
    e.Unprocessable: 422,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotOwner: 403,
    e.StaleLease: 409,  # a fenced lease: a conflict with the claim that replaced it
    e.NotFound: 404,
    e.WrongState: 409,
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.Unavailable: 503,
    e.StorageError: 503,
}

_encode = msgspec.json.Encoder().encode
_RETRY_LATER = [(b"retry-after", b"1")]


class ClientGone(Exception):
    """The client closed the connection during a long poll; nobody reads the answer."""


def json_reply(body: object, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> Reply:
    return Reply(status, _encode(body), headers or [])


def error_reply(status: int, message: str, **extra: str) -> Reply:
    return json_reply(ErrorJSON(error=message, **extra), status)


def status_of(error: e.CodeqError) -> int:
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def codeq_error(request: Request, exc: e.CodeqError) -> Reply:
    if isinstance(exc, e.NotLeader):
        return _not_leader(request, exc)
    if isinstance(exc, e.RateLimited):
        return rate_limited(exc)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.path, exc.message)
    reply = error_reply(status, error_text(exc), field=error_field(exc))
    if status == 503:
        reply.headers = _RETRY_LATER
    return reply


def _not_leader(request: Request, exc: e.NotLeader) -> Reply:
    if not exc.leader_url:
        return Reply(503, _encode(ErrorJSON(error="no leader available")), _RETRY_LATER)
    leader = exc.leader_url.rstrip("/")
    query = request.query_string
    target = leader + request.path + (f"?{query}" if query else "")
    reply = error_reply(307, "not leader", leader=leader)
    reply.headers = [(b"location", target.encode())]
    return reply


def rate_limited(exc: e.RateLimited) -> Reply:
    """429 with `Retry-After` and the reference's body (spec 03 §6.3)."""
    seconds = exc.retry_after_seconds
    body = RateLimitedJSON(
        error=exc.message, operation=exc.operation, retry_after_seconds=seconds, scope=exc.scope
    )
    return Reply(429, _encode(body), [(b"retry-after", str(seconds).encode())])


def unexpected_error(request: Request, exc: BaseException) -> Reply:
    log.error("%s %s: unexpected error", request.method, request.path, exc_info=exc)
    return error_reply(500, "internal error")
