"""The limits every HTTP connection meets before its request reaches the app (ADR 0006)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpServerLimits:
    """Limits applied to every connection before a request reaches the app (settings `http.*`)."""

    max_head_bytes: int = 64 * 1024  # request line + headers; more is 431
    max_headers: int = 100  # more is 431
    head_timeout_seconds: float = 10.0  # from the connection (or the first byte of a head) to its end
    body_timeout_seconds: float = 60.0  # from the end of the head to the end of the body
    idle_timeout_seconds: float = 5.0  # a keep-alive connection with no request is closed
    max_connections: int = 10_000  # and never more than the descriptor limit allows
