"""Bearer tokens that change: a provider called again on a 401, or shortly before a JWT's `exp`."""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import time
from collections.abc import Awaitable, Callable

TokenProvider = Callable[[], "str | Awaitable[str]"]
Token = str | TokenProvider
# Ask for a new token this long before the JWT says it expires: clocks differ, requests take time.
REFRESH_BEFORE_EXP_SECONDS = 30.0


class TokenSource:
    """The token to send now. A plain string never changes; a provider (a function, sync or
    async, returning the token) is called for the first request, again once the JWT it returned
    is within `REFRESH_BEFORE_EXP_SECONDS` of its `exp`, and again whenever the server answered
    401 to the token it returned (`refresh`). A token that is not a JWT is kept until a 401."""

    def __init__(self, token: Token, clock: Callable[[], float] = time.time) -> None:
        self._provider = None if isinstance(token, str) else token
        self._token = token if isinstance(token, str) else ""
        self._refresh_at: float | None = None
        self._clock = clock

    @property
    def refreshable(self) -> bool:
        return self._provider is not None

    async def current(self) -> str:
        if self._provider is not None and (
            not self._token or (self._refresh_at is not None and self._clock() >= self._refresh_at)
        ):
            await self.refresh()
        return self._token

    async def refresh(self) -> str:
        """Call the provider for a new token (a static token stays what it is)."""
        if self._provider is None:
            return self._token
        answer = self._provider()
        token = await answer if inspect.isawaitable(answer) else answer
        if not isinstance(token, str) or not token:
            raise ValueError("the token provider must return a non-empty string")
        self._token = token
        exp = jwt_expiry(token)
        self._refresh_at = None if exp is None else exp - REFRESH_BEFORE_EXP_SECONDS
        return token


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (read, not verified: the server verifies), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
