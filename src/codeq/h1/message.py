"""The bytes of an HTTP/1.1 response: the client's errors, H1Response, and ResponseParser (sans I/O)."""

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


def _framing(
    status: int, http11: bool, fields: Fields, head_only: bool, max_body_bytes: int
) -> tuple[int, int, bool]:
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
    if length > max_body_bytes:
        raise H1ProtocolError(f"response body of {length} bytes exceeds {max_body_bytes}")
    return _LENGTH, length, keep


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not digits or len(digits) > 16 or digits.strip(_HEX):
        raise H1ProtocolError(f"bad chunk size line {line[:40]!r}")
    return int(digits, 16)


class ResponseParser:
    """One response at a time from a byte stream: `start`, then `feed` bytes until it returns
    the response (or `at_eof` when the peer closes). No I/O, so the asyncio connections and
    the blocking fetch share it. After a response, `keep` says whether the head allows reuse
    and `leftover` whether bytes past its end arrived (then the stream is out of step)."""

    __slots__ = (
        "_body",
        "_buf",
        "_fields",
        "_head_only",
        "_left",
        "_max_body",
        "_mode",
        "_scanned",
        "_status",
        "_trailer_bytes",
        "keep",
    )

    def __init__(self, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_body = max_body_bytes
        self._buf = bytearray()
        self._body = bytearray()
        self._fields: Fields = ()
        self._head_only = self.keep = False
        self._status = self._mode = self._left = self._scanned = 0
        self._trailer_bytes = -1

    @property
    def leftover(self) -> bool:
        return bool(self._buf)

    def start(self, head_only: bool) -> None:
        """Expect the response to a new request (`head_only` for HEAD: no body follows)."""
        self._head_only, self.keep = head_only, False
        self._status, self._scanned, self._trailer_bytes = 0, 0, -1
        self._body.clear()

    def feed(self, data: bytes) -> H1Response | None:
        """Take the next bytes; the response once it is complete, else None."""
        self._buf += data
        if not self._status and not self._read_head():
            return None
        buf = self._buf
        if self._mode == _LENGTH:
            if len(buf) >= self._left:
                body = bytes(buf[: self._left])
                del buf[: self._left]
                return self._response(body)
        elif self._mode == _CHUNKED:
            if self._read_chunks():
                return self._response(bytes(self._body))
        elif self._mode == _UNTIL_CLOSE:
            self._body += buf
            buf.clear()
            if len(self._body) > self._max_body:
                raise H1ProtocolError(f"response body exceeds {self._max_body} bytes")
        else:
            return self._response(b"")
        return None

    def at_eof(self) -> H1Response | None:
        """The response if the peer's close ends it (a body delimited by close), else None."""
        if self._status and self._mode == _UNTIL_CLOSE:
            return self._response(bytes(self._body))
        return None

    def _response(self, body: bytes) -> H1Response:
        return H1Response(self._status, self._fields, body)

    def _read_head(self) -> bool:
        """Parse the next final response head from the buffer; False until it is complete."""
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n", self._scanned)
            if end < 0 or end > MAX_HEAD_BYTES:
                if len(buf) > MAX_HEAD_BYTES:
                    raise H1ProtocolError(f"response head exceeds {MAX_HEAD_BYTES} bytes")
                self._scanned = max(0, len(buf) - 3)
                return False
            status, http11, fields = _parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            self._scanned = 0
            if status == 101:
                raise H1ProtocolError("unexpected 101 Switching Protocols")
            if status >= 200:
                break
            # 1xx (100 Continue, 103 Early Hints) are interim: the final answer follows.
        self._mode, self._left, self.keep = _framing(status, http11, fields, self._head_only, self._max_body)
        self._status, self._fields = status, fields
        return True

    def _read_chunks(self) -> bool:
        """Decode chunks from the buffer into the body; True once the last one and trailers are in."""
        buf = self._buf
        while self._take_chunk_data():
            eol = buf.find(b"\r\n", 0, MAX_CHUNK_LINE_BYTES + 2)
            if eol < 0:
                if len(buf) > MAX_CHUNK_LINE_BYTES:
                    raise H1ProtocolError("chunk size line too long")
                return False
            line = bytes(buf[:eol])
            del buf[: eol + 2]
            if self._trailer_bytes >= 0:  # after the last chunk: trailer fields (ignored)
                if self._end_of_trailers(len(line)):
                    return True
            elif (size := _chunk_size(line)) == 0:
                self._trailer_bytes = 0
            elif len(self._body) + size > self._max_body:
                raise H1ProtocolError(f"response body exceeds {self._max_body} bytes")
            else:
                self._left = size
        return False

    def _take_chunk_data(self) -> bool:
        """Move the current chunk's data into the body; False while it is incomplete."""
        end = self._left + 2
        if not self._left:
            return True
        if len(self._buf) < end:
            return False
        if self._buf[end - 2 : end] != b"\r\n":
            raise H1ProtocolError("chunk data not followed by CRLF")
        self._body += self._buf[: end - 2]
        del self._buf[:end]
        self._left = 0
        return True

    def _end_of_trailers(self, size: int) -> bool:
        self._trailer_bytes += size + 2
        if self._trailer_bytes > MAX_HEAD_BYTES:
            raise H1ProtocolError(f"response trailers exceed {MAX_HEAD_BYTES} bytes")
        return size == 0
