"""TLS for every listener: one certificate and key, and an optional CA that client certificates need."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM file paths; `client_ca_file` set means mutual TLS (a client without a certificate
    signed by that CA is refused in the handshake)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""

    @classmethod
    def from_files(cls, cert_file: str, key_file: str, client_ca_file: str = "") -> ServerTls | None:
        """None when no certificate is configured: the listeners serve plaintext."""
        return cls(cert_file, key_file, client_ca_file) if cert_file else None

    def ssl_context(self) -> ssl.SSLContext:
        """The HTTP listener's context: TLS 1.2 or later, HTTP/1.1 by ALPN."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        context.set_alpn_protocols(["http/1.1"])
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def pem(self) -> tuple[bytes, bytes, bytes | None]:
        """Key, certificate chain and client CA as bytes (what gRPC's credentials take)."""
        ca = Path(self.client_ca_file).read_bytes() if self.client_ca_file else None
        return Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes(), ca
