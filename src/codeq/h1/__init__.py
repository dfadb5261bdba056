"""codeq's own HTTP/1.1 client, shared by the SDK and the server (ADR 0002): stdlib only.

`H1Client` is the asyncio client with keep-alive pools (the SDK's HTTP transport, the
server's result callbacks and queue notifications); `fetch` is one blocking GET for
callers on a worker thread (the server's JWKS refresh). Both speak through the same
response parser and raise the same `H1Error` tree.
"""

from codeq.h1.client import IDLE_SECONDS, H1Client
from codeq.h1.fetch import fetch
from codeq.h1.message import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    H1ConnectError,
    H1Error,
    H1ProtocolError,
    H1Response,
    H1Timeout,
    H1TransportError,
)

__all__ = [
    "IDLE_SECONDS",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "H1Client",
    "H1ConnectError",
    "H1Error",
    "H1ProtocolError",
    "H1Response",
    "H1Timeout",
    "H1TransportError",
    "fetch",
]
