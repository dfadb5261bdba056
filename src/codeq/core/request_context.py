"""The tenant a request authenticated as, for the access log: set at the auth edge, read at the end."""

from __future__ import annotations

from contextvars import ContextVar

# "" before (or without) authentication. The HTTP observer resets it per request while the
# access log is on, so a keep-alive connection never reports the previous request's tenant.
REQUEST_TENANT: ContextVar[str] = ContextVar("codeq_request_tenant", default="")
