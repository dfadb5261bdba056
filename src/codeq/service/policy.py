"""Defaults and limits the services enforce on what callers send (spec 01 gap 14)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Policy:
    default_lease_seconds: int = 300
    max_attempts_default: int = 5
    max_lease_seconds: int = 86_400
    max_delay_seconds: int = 31_536_000
    backoff_max_seconds: int = 900  # an explicit nack delay is capped here too (spec 02 §nack)
    max_attempts: int = 1000
    max_payload_bytes: int = 512 * 1024
    max_batch_size: int = 100
    max_claim_batch: int = 10
    max_claim_wait_seconds: int = 30
    max_result_wait_seconds: int = 60
