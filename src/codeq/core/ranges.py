"""The ranges task settings accept, in one place: tasks and topic policies share them."""

from __future__ import annotations

# Priorities a task may carry, and so the tiers a topic policy may name (spec 01 §3.1).
MIN_PRIORITY = 0
MAX_PRIORITY = 9
PRIORITY_COUNT = MAX_PRIORITY - MIN_PRIORITY + 1

# The fewest deliveries a task or topic may allow; the most is the configured
# `limits.maxAttempts` (service/policy.py), the same bound for both.
MIN_ATTEMPTS = 1


def is_priority(value: int) -> bool:
    return MIN_PRIORITY <= value <= MAX_PRIORITY


def priority_range() -> str:
    return f"{MIN_PRIORITY}..{MAX_PRIORITY}"
