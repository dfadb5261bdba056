"""The one mapping from errors to HTTP responses (spec 02 §7, with the fixes of its gap 3)."""

from __future__ import annotations

import logging

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from codeq.core import errors as e
from codeq.wire.http import ErrorJSON

log = logging.getLogger("codeq.http")

_STATUS: dict[type[e.CodeqError], int] = {
    e.InvalidInput: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotOwner: 403,
    e.NotFound: 404,
    e.WrongState: 409,
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.Unavailable: 503,
    e.StorageError: 503,
}

_encode = msgspec.json.Encoder().encode


class ClientGone(Exception):
    """The client closed the connection during a long poll; nobody reads the answer."""


async def client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status, headers=headers, media_type="application/json")


def error_response(status: int, message: str, **extra: str) -> Response:
    return json_response(ErrorJSON(error=message, **extra), status)


def status_of(error: e.CodeqError) -> int:
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


async def codeq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.CodeqError)
    if isinstance(exc, e.NotLeader):
        return _not_leader(request, exc)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    response = error_response(status, exc.message, field=exc.field or "")
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def _not_leader(request: Request, exc: e.NotLeader) -> Response:
    if not exc.leader_url:
        response = error_response(503, "no leader available")
        response.headers["Retry-After"] = "1"
        return response
    leader = exc.leader_url.rstrip("/")
    target = leader + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = error_response(307, "not leader", leader=leader)
    response.headers["Location"] = target
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")
