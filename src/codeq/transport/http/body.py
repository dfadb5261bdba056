"""Decoding request bodies: lenient, typed JSON with the reference's error texts."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from codeq.core.errors import InvalidInput
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
