"""Retry delays after a nack or an expired lease (spec 01 §6.2)."""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("fixed", "linear", "exponential", "exp_equal_jitter", "exp_full_jitter")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    policy: str = "exp_full_jitter"
    base_seconds: int = 5
    max_seconds: int = 900

    def delay_seconds(self, attempts: int, jitter: float) -> int:
        """The delay after a failed delivery; `jitter` in [0, 1) is drawn by the proposer.

        The exponential term saturates at `max_seconds` before any conversion, so a huge
        attempt count can neither overflow nor go negative (spec 01 gap 15).
        """
        base = self.base_seconds if self.base_seconds > 0 else 1
        cap = self.max_seconds if self.max_seconds > 0 else base
        attempts = max(attempts, 0)
        if self.policy == "fixed":
            return min(base, cap)
        if self.policy == "linear":
            return min(base * max(1, attempts), cap)
        d = _saturated_exponential(base, attempts, cap)
        if self.policy == "exponential":
            return d
        if self.policy == "exp_equal_jitter":
            half = d // 2
            return half + _uniform_int(half, jitter)
        return _uniform_int(d, jitter) if d > 0 else 0


def _saturated_exponential(base: int, attempts: int, cap: int) -> int:
    if attempts >= 63 or base << attempts >= cap:
        return cap
    return base << attempts


def _uniform_int(upper_inclusive: int, jitter: float) -> int:
    """Uniform integer in [0, upper] from a fraction in [0, 1)."""
    jitter = min(max(jitter, 0.0), 0.999999999)
    return int(jitter * (upper_inclusive + 1))
