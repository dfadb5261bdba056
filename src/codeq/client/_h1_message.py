"""The bytes of an HTTP/1.1 response: the client's errors, H1Response, head parsing and body framing."""

from __future__ import annotations

import re

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_CHUNK_LINE_BYTES = 4096

Fields = tuple[tuple[str, str], ...]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = b"0123456789abcdefABCDEF"
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class H1Error(Exception):
    """Base of this module's errors; `request_sent` says whether the server may have the request."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class H1ConnectError(H1Error):
    """No connection could be made (refused, DNS, TLS, connect timeout): nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class H1TransportError(H1Error):
    """The connection failed after the request was written (unless `request_sent` is False)."""


class H1ProtocolError(H1TransportError):
    """The response broke HTTP/1.1 framing or exceeded a size limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=True)


class H1Timeout(H1Error, TimeoutError):
    """The request's `timeout` ran out; `request_sent` says whether it had been written."""


class _Dropped(H1TransportError):
    """Closed or reset after the write, before any response byte: the one retryable failure."""


class H1Response:
    """A complete response: `status`, `headers` as received, and the whole `body`."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Fields, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The field's value (case-insensitive name; repeated fields joined by ", ")."""
        key = name.lower()
        values = [value for field, value in self.headers if field.lower() == key]
        return ", ".join(values) if values else None

    def __repr__(self) -> str:
        return f"H1Response({self.status}, {len(self.headers)} headers, {len(self.body)} bytes)"


def _parse_head(block: bytes) -> tuple[int, bool, Fields]:
    """(status, is HTTP/1.1, fields) of a response head without its final blank line."""
    lines = block.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (
        len(code) == 3 and code.isascii() and code.isdigit() and rest[3:4] in ("", " ")
    ):
        raise H1ProtocolError(f"bad status line {lines[0][:80]!r}")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and fields:  # obsolete line folding (RFC 9112 §5.2)
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip(" \t"))
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise H1ProtocolError(f"bad header line {line[:80]!r}")
        fields.append((name, value.strip(" \t")))
    return int(code), version == "HTTP/1.1", tuple(fields)


def _content_length(value: str, seen: int | None) -> int:
    numbers = {part.strip(" \t") for part in value.split(",")}
    number = numbers.pop()
    if numbers or not (number.isascii() and number.isdigit()) or seen not in (None, int(number)):
        raise H1ProtocolError(f"bad Content-Length {value[:40]!r}")
    return int(number)


def _framing(status: int, http11: bool, fields: Fields, head_only: bool) -> tuple[int, int, bool]:
    """(body mode, Content-Length, keep-alive) of a final response (RFC 9112 §6.3)."""
    length: int | None = None
    coding: str | None = None
    tokens: set[str] = set()
    for name, value in fields:
        key = name.lower()
        if key == "content-length":
            length = _content_length(value, length)
        elif key == "transfer-encoding":
            coding = value.rsplit(",", 1)[-1].strip(" \t").lower()
        elif key == "connection":
            tokens.update(token.strip(" \t").lower() for token in value.split(","))
    keep = "close" not in tokens if http11 else "keep-alive" in tokens
    if head_only or status in (204, 304):
        return _NO_BODY, 0, keep
    if coding is not None:
        # Chunked must be the final coding, else the body runs to close; with a Content-Length
        # as well the message is suspect (smuggling), so its connection is not reused.
        return (_CHUNKED, 0, keep and length is None) if coding == "chunked" else (_UNTIL_CLOSE, 0, False)
    if length is None:
        return _UNTIL_CLOSE, 0, False
    if length > MAX_BODY_BYTES:
        raise H1ProtocolError(f"response body of {length} bytes exceeds {MAX_BODY_BYTES}")
    return _LENGTH, length, keep


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not digits or len(digits) > 16 or digits.strip(_HEX):
        raise H1ProtocolError(f"bad chunk size line {line[:40]!r}")
    return int(digits, 16)
