"""Where the SDK finds its server and token when the caller names neither: the environment."""

from __future__ import annotations

import os

from codeq.client._tokens import Token

DEFAULT_URL = "http://localhost:8080"
URL_VARIABLES = ("CODEQ_URL", "CODEQ_BASE_URL")
WORKER_TOKEN_VARIABLES = ("CODEQ_TOKEN", "CODEQ_WORKER_TOKEN")


def url_from_environment(url: str | None) -> str:
    """`url` if given, else `$CODEQ_URL`, else `$CODEQ_BASE_URL` (the CLI's), else localhost:8080."""
    return url or _first(URL_VARIABLES) or DEFAULT_URL


def worker_token_from_environment(token: Token | None) -> Token:
    """`token` if given, else `$CODEQ_TOKEN`, else `$CODEQ_WORKER_TOKEN`; "" when none is set.

    An empty token is refused when the worker starts, not here, so that a module can build
    its worker at import time and the `codeq worker` command can still supply `--token`.
    """
    return token or _first(WORKER_TOKEN_VARIABLES)


def _first(variables: tuple[str, ...]) -> str:
    for name in variables:
        value = os.environ.get(name, "")
        if value:
            return value
    return ""
