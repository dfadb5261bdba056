"""The one mapping from errors to gRPC status codes and their names on the stream wire."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from codeq.core import errors as e

log = logging.getLogger("codeq.grpc")

_STATUS: dict[type[e.CodeqError], grpc.StatusCode] = {
    e.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    # gRPC answers an oversized message with RESOURCE_EXHAUSTED; an oversized payload is the
    # same mistake one level down, and stays distinguishable from a malformed one.
    e.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    e.NotOwner: grpc.StatusCode.PERMISSION_DENIED,
    e.StaleLease: grpc.StatusCode.FAILED_PRECONDITION,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.WrongState: grpc.StatusCode.FAILED_PRECONDITION,
    e.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    e.NotLeader: grpc.StatusCode.UNAVAILABLE,
    e.Unavailable: grpc.StatusCode.UNAVAILABLE,
    e.StorageError: grpc.StatusCode.UNAVAILABLE,
}
# Go's codes.Code.String() spelling, which the reference's clients see in ServerError.code.
_GO_SPELLING = {"OK": "OK", "CANCELLED": "Canceled"}


def status_of(error: e.CodeqError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return grpc.StatusCode.INTERNAL


def code_name(status: grpc.StatusCode) -> str:
    """`INVALID_ARGUMENT` as `InvalidArgument`: the form ServerError.code carries."""
    name: str = status.name
    return _GO_SPELLING.get(name) or "".join(part.title() for part in name.split("_"))


def error_text(error: e.CodeqError) -> str:
    """The service's own words; a not-leader error also names the leader when it is known."""
    if isinstance(error, e.NotLeader) and error.leader_url:
        return f"{error.message} (leader: {error.leader_url})"  # names no field
    if isinstance(error, e.RateLimited):
        return f"{error.message} (retry after {error.retry_after_seconds} s)"
    return error.text(proto_name)


# A neutral field id that is not also the protobuf field's name (`result` is `result_json`).
_PROTO_NAMES = {"result": "result_json"}


def proto_name(field_id: str) -> str:
    """A neutral field id as the stream messages name it (their protobuf field)."""
    return _PROTO_NAMES.get(field_id, field_id)


def server_error(error: e.CodeqError) -> tuple[str, str]:
    """(code, message) for an in-stream ServerError."""
    status = status_of(error)
    if status is grpc.StatusCode.INTERNAL:
        log.warning("stream operation failed: %s", error.message)
    return code_name(status), error_text(error)


async def abort(context: grpc.aio.ServicerContext, status: grpc.StatusCode, message: str) -> NoReturn:
    """End the RPC with a status; gRPC raises out of `abort`, the assertion only tells mypy so."""
    await context.abort(status, message)
    raise AssertionError("grpc.aio abort returned")
