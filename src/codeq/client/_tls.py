"""What the SDK trusts and presents over TLS: the system's CAs unless the environment names others."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

# Read when a transport is made; one set serves https:// and grpcs:// alike.
CA_FILE_ENV = "CODEQ_CA_FILE"  # PEM CAs to trust instead of the system's (a private CA)
CERT_FILE_ENV = "CODEQ_CLIENT_CERT_FILE"  # PEM certificate to present (a server asking for one)
KEY_FILE_ENV = "CODEQ_CLIENT_KEY_FILE"  # its private key


@dataclass(frozen=True, slots=True)
class ClientTls:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_environment(cls) -> ClientTls:
        env = os.environ
        return cls(env.get(CA_FILE_ENV, ""), env.get(CERT_FILE_ENV, ""), env.get(KEY_FILE_ENV, ""))

    def verify(self) -> bool | ssl.SSLContext:
        """The HTTP client's `verify`: True (system CAs) unless a CA or client certificate is set."""
        if not (self.ca_file or self.cert_file):
            return True
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        return context

    def grpc_pem(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """Root CAs, client key and client certificate for `grpc.ssl_channel_credentials`;
        None leaves gRPC's default (its bundled roots; no client certificate)."""
        return _read(self.ca_file), _read(self.key_file), _read(self.cert_file)


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None
