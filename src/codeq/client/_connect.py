"""The transport a URL names: codeq's HTTP API, or its gRPC streams for a `grpc://` or `grpcs://` URL."""

from __future__ import annotations

from codeq import DISTRIBUTION
from codeq.client._http import HttpTransport
from codeq.client._tokens import Token
from codeq.client._transport import GRPC_SCHEME, GRPCS_SCHEME, Transport


def connect(
    url: str,
    token: Token,
    *,
    timeout: float = 10.0,
    http_url: str | None = None,
    worker_id: str | None = None,
) -> Transport:
    """The transport a URL names: `grpc://host:port` the gRPC streams (`grpcs://` over TLS;
    reads then go to `http_url`), anything else codeq's HTTP API (`https://` over TLS). With
    `worker_id`, the leases it takes belong to that instance of the token's subject
    (`X-Worker-Id`, `Hello.worker_id`). TLS trust comes from `codeq.client._tls`. A token
    provider (see `TokenSource`) needs the HTTP API: a stream sends its token once, when it opens."""
    if not url.startswith((GRPC_SCHEME, GRPCS_SCHEME)):
        return HttpTransport(url, token, timeout=timeout, worker_id=worker_id)
    if not isinstance(token, str):
        raise ValueError("a token provider works with an HTTP URL; pass a token string for grpc://")
    try:
        # Imported only here: the SDK must work with neither grpcio nor protobuf installed.
        from codeq.client._grpc import GrpcTransport
    except ImportError as exc:
        hint = f"pip install '{DISTRIBUTION}[grpc]'"
        raise ImportError(f"{GRPC_SCHEME} URLs need grpcio and protobuf: {hint}") from exc
    return GrpcTransport(url, token, http_url=http_url, timeout=timeout, worker_id=worker_id)
