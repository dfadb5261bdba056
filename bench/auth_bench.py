#!/usr/bin/env python3
"""The cost of authenticating one request with a JWT (RS256, ES256) and with a static token.

A real JWKS server on 127.0.0.1 serves the keys; the loop calls `Authenticator.producer` with
the same token, as a client reusing its token does. `--no-cache` re-verifies every time.

  .venv/bin/python bench/auth_bench.py [--requests 5000] [--no-cache]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.support

from codeq.auth.claims import Claims
from codeq.auth.edge import Authenticator
from codeq.auth.jwt import JwksSettings, JwksValidator
from codeq.auth.static import StaticValidator
from codeq.core.clock import SystemClock
from tests.support.jwks import AUDIENCE, ISSUER, SigningKey, jwks_server


def per_request_us(auth: Authenticator, header: str, n: int) -> float:
    auth.producer(header)  # warm: keys fetched, verdict cached
    started = time.perf_counter()
    for _ in range(n):
        auth.producer(header)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    clock = SystemClock()
    with jwks_server() as server:
        keys = [SigningKey.rsa("r1"), SigningKey.ec("e1")]
        server.publish(*keys)
        validator = JwksValidator(JwksSettings(server.url, ISSUER, AUDIENCE), clock)
        if args.no_cache:
            validator.CACHE_MS = 0  # type: ignore[misc]
        auth = Authenticator(validator, None, clock=clock)
        claims = {"sub": "svc", "tid": "acme", "iss": ISSUER, "aud": AUDIENCE}
        for key in keys:
            token = key.sign({**claims, "exp": clock.now_ms() // 1000 + 3600})
            print(f"{key.alg}: {per_request_us(auth, f'Bearer {token}', args.requests):.1f} µs per request")
    static = StaticValidator("s3cret", Claims(subject="svc", raw=MappingProxyType({"tid": "acme"})))
    print(f"static: {per_request_us(Authenticator(static, None), 'Bearer s3cret', args.requests):.1f} µs")


if __name__ == "__main__":
    main()
