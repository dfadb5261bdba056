"""Checks on untrusted JSON bytes before they are parsed: UTF-8 and nesting depth.

Both transports carry client JSON (REST bodies; `payload` and `result_json` on the streams).
msgspec leaves a `Raw` value's bytes unchecked and parses nesting recursively, so without
these checks invalid UTF-8 inside `payload` or `result` and a deeply nested document were
answered 500 with a traceback in the log. Both are the client's mistake: a 400 naming the
field.
"""

from __future__ import annotations

import re

from codeq.core.errors import InvalidInput

# The deepest nesting a client's JSON value (a payload, a result) may have: `[]` is level 1.
# A request body may nest as much deeper as its own envelope around that value (`envelope`).
# Go's encoding/json allows 10,000, but no task needs that many, and parsers (ours, the
# SDKs', workers') recurse per level.
MAX_JSON_DEPTH = 64

# A JSON string (escapes included), optionally followed by the colon that makes it a key;
# or one bracket. Everything between tokens is skipped by the regex engine, not by Python.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{}]')
_OPENS = frozenset(b"[{")
_CLOSES = frozenset(b"]}")
# Brackets only, both kinds folded into `[]`, so removing `[]` pairs peels one level a pass.
_FOLD = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def check_json(body: bytes, message: str, field: str | None = None, *, envelope: int = 0) -> None:
    """Refuse `body` (400, `message` plus the reason) when it is not UTF-8 or nests deeper
    than MAX_JSON_DEPTH plus `envelope` (the levels around the client's value: 1 for
    `{"payload": …}`, 3 for `{"tasks": [{"payload": …}]}`). `field`: the name to report; by
    default the top-level key where the problem is."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError as exc:
            name = field or _key_at(body, exc.start)
            raise InvalidInput(f"{message}: not valid UTF-8", field=name) from None
    limit = MAX_JSON_DEPTH + envelope
    # The common case costs two counts: fewer brackets than the limit cannot nest deeper.
    if body.count(b"[") + body.count(b"{") <= limit or not _maybe_too_deep(body, limit):
        return
    at = _first_too_deep(body, limit)
    if at is not None:
        name = field or _key_at(body, at)
        raise InvalidInput(f"{message}: nested deeper than {MAX_JSON_DEPTH} levels", field=name)


def _maybe_too_deep(body: bytes, limit: int) -> bool:
    """False when the brackets outside strings surely nest at most `limit` deep.

    C-speed passes only: escapes are removed (a backslash pairs with the next byte, so `\\\\`
    first, then `\\"`), the text between quotes dropped, and of the rest only brackets kept.
    Each removal of adjacent `[]` pairs then peels the innermost level, so brackets left
    after `limit` passes mean deeper nesting (or unbalanced brackets, which
    `_first_too_deep` tells apart); a run of `limit + 1` openers says so at once.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(_FOLD, _NOT_BRACKETS)
    run = b"[" * (limit + 1)
    for _ in range(limit):
        if not brackets:
            return False
        if run in brackets:
            return True
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return True
        brackets = shorter
    return bool(brackets)


def _first_too_deep(body: bytes, limit: int) -> int | None:
    """The offset of the first bracket that opens level `limit` + 1, if any."""
    depth = 0
    for token in _TOKEN.finditer(body):
        byte = body[token.start()]
        if byte in _OPENS:
            depth += 1
            if depth > limit:
                return token.start()
        elif byte in _CLOSES:
            depth -= 1
    return None


def _key_at(body: bytes, offset: int) -> str | None:
    """The top-level object's key whose value holds byte `offset`, when there is one."""
    depth, key = 0, None
    for token in _TOKEN.finditer(body):
        if token.start() >= offset:
            break
        byte = body[token.start()]
        if byte in _OPENS:
            depth += 1
        elif byte in _CLOSES:
            depth -= 1
        elif depth == 1 and token.group(1) is not None:
            text = token.group(0)
            key = text[1 : text.rfind(b'"')].decode(errors="replace")
        if depth == 0:
            key = None
    return key
