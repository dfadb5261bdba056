"""Decoding request bodies: typed JSON, the reference's error texts, unknown fields refused by name."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from codeq.core.errors import FIELD, InvalidInput
from codeq.transport.json_input import check_json

T = TypeVar("T")

_decoders: dict[type, msgspec.json.Decoder[object]] = {}


def decode(
    body: bytes, cls: type[T], *, message: str = "invalid body", empty_ok: bool = False, envelope: int = 1
) -> T:
    """Decode JSON into `cls`; any mismatch is a 400 with `message` (the reference's texts).

    `empty_ok`: an empty body is `{}` for routes whose fields are all optional (spec 02 gap 9).
    Invalid UTF-8 and nesting deeper than MAX_JSON_DEPTH (plus the `envelope` levels around a
    payload or result: 3 in a batch) are refused first, naming the field: msgspec leaves `Raw`
    bytes unchecked and recurses per level.
    """
    if empty_ok and not body.strip():
        body = b"{}"
    check_json(body, message, envelope=envelope)
    decoder = _decoders.get(cls)
    if decoder is None:
        decoder = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        value: T = decoder.decode(body)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        raise _invalid(message, str(exc)) from None
    except msgspec.DecodeError:
        raise InvalidInput(message) from None
    return value


def _invalid(message: str, text: str) -> InvalidInput:
    """The 400 for a body of the wrong shape, naming the field: an unknown field and a missing
    required one say so after the route's own text (`invalid body: unknown field "x"`)."""
    where = _path_of(text)
    if text.startswith(_UNKNOWN):
        name = text[len(_UNKNOWN) :].split("`", 1)[0]
        field = f"{where}.{name}" if where else name
        return InvalidInput(f'{message}: unknown field "{field}"', field=field)
    if text.startswith(_MISSING):
        name = text[len(_MISSING) :].split("`", 1)[0]
        return InvalidInput(f"{message}: {FIELD} is required", field=f"{where}.{name}" if where else name)
    return InvalidInput(message, field=where.split("[", 1)[0] or None)


_UNKNOWN = "Object contains unknown field `"
_MISSING = "Object missing required field `"


def _path_of(text: str) -> str:
    """`results[0]` from msgspec's `... - at `$.results[0]``; "" at the top level."""
    marker = "at `$."
    return text.split(marker, 1)[1].split("`", 1)[0] if marker in text else ""
