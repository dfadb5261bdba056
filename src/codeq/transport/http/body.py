"""Reading request bodies: the size limit (413) and lenient, typed JSON decoding."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request

from codeq.core.errors import InvalidInput, PayloadTooLarge

T = TypeVar("T")

_decoders: dict[type, msgspec.json.Decoder[object]] = {}


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, cls: type[T], *, message: str = "invalid body", empty_ok: bool = False) -> T:
    """Decode JSON into `cls`; any mismatch is a 400 with `message` (the reference's texts).

    `empty_ok`: an empty body is `{}` for routes whose fields are all optional (spec 02 gap 9).
    """
    if empty_ok and not body.strip():
        body = b"{}"
    decoder = _decoders.get(cls)
    if decoder is None:
        decoder = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        value: T = decoder.decode(body)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        raise InvalidInput(message, field=_field_of(exc)) from None
    except msgspec.DecodeError:
        raise InvalidInput(message) from None
    return value


def _field_of(exc: msgspec.ValidationError) -> str | None:
    text = str(exc)
    marker = "at `$."
    if marker in text:
        return text.split(marker, 1)[1].split("`", 1)[0].split("[", 1)[0] or None
    if "missing required field `" in text:
        return text.split("missing required field `", 1)[1].split("`", 1)[0]
    return None
