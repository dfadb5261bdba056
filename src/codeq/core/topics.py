"""Queue topics: a tenant-scoped catalog of queue policies (spec 01 §1.5 and §10.2).

Catalog metadata only, as in the reference: nothing in enqueue or claim reads a topic yet
(spec 01 gap 19), and the API says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codeq.core.errors import Unprocessable
from codeq.core.names import TENANT_PATTERN, is_valid_tenant
from codeq.core.ranges import MAX_PRIORITY, MIN_ATTEMPTS, MIN_PRIORITY, PRIORITY_COUNT, is_priority

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_MESSAGE = "must be a DNS label with at most 63 characters"
MAX_RETENTION_SECONDS = 2_147_483_647
MAX_CONSUMERS = 10_000


@dataclass(frozen=True, slots=True)
class TopicPolicy:
    priority_tiers: tuple[int, ...]  # sorted ascending once validated
    max_attempts: int
    dead_letter_topic_ref: str
    retention_seconds: int = 0  # 0: unset
    max_consumers: int = 0  # 0: unset


@dataclass(frozen=True, slots=True)
class Topic:
    tenant: str
    name: str
    policy: TopicPolicy
    version: int
    created_ms: int
    updated_ms: int

    @property
    def topic_id(self) -> str:
        return topic_id(self.tenant, self.name)


def topic_id(tenant: str, name: str) -> str:
    """The physical id `<tenant>.<topicName>`: unambiguous, since neither part has a dot."""
    return f"{tenant}.{name}"


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"invalid {field}: {message}", field=field)


def is_dns_label(text: str) -> bool:
    return len(text) <= 63 and bool(_DNS_LABEL.fullmatch(text))


def validate_identity(tenant: str, name: str) -> None:
    """The checks that come before the policy's, in the reference's order."""
    if not is_valid_tenant(tenant):
        raise _invalid("tenantId", f"must match {TENANT_PATTERN}")
    if not is_dns_label(name):
        raise _invalid("topicName", _DNS_MESSAGE)


def validate_policy(name: str, policy: TopicPolicy, max_attempts: int | None = None) -> TopicPolicy:
    """The normalised policy (tiers sorted), or `Unprocessable` naming the first bad field.

    The ranges are the tasks' own (core/ranges.py), not codeQ's 0–10 tiers and 100 attempts:
    a policy must not allow what no task may carry. `max_attempts` is the configured bound;
    None (the engine's check on apply, which must not depend on a node's configuration)
    checks the lower end only."""
    tiers = policy.priority_tiers
    _check_tiers(tiers)
    _check_attempts(policy.max_attempts, max_attempts)
    if not is_dns_label(policy.dead_letter_topic_ref):
        raise _invalid("deadLetterTopicRef", _DNS_MESSAGE)
    if policy.dead_letter_topic_ref == name:
        raise _invalid("deadLetterTopicRef", "must differ from topicName")
    if not 0 <= policy.retention_seconds <= MAX_RETENTION_SECONDS:
        raise _invalid("retentionSeconds", f"must be between 0 and {MAX_RETENTION_SECONDS}")
    if not 0 <= policy.max_consumers <= MAX_CONSUMERS:
        raise _invalid("maxConsumers", f"must be between 0 and {MAX_CONSUMERS}")
    return TopicPolicy(
        priority_tiers=tuple(sorted(tiers)),
        max_attempts=policy.max_attempts,
        dead_letter_topic_ref=policy.dead_letter_topic_ref,
        retention_seconds=policy.retention_seconds,
        max_consumers=policy.max_consumers,
    )


def _check_tiers(tiers: tuple[int, ...]) -> None:
    if not 1 <= len(tiers) <= PRIORITY_COUNT:
        raise _invalid("priorityTiers", f"must contain between 1 and {PRIORITY_COUNT} priorities")
    if not all(is_priority(tier) for tier in tiers):
        allowed = f"{MIN_PRIORITY} through {MAX_PRIORITY}"
        raise _invalid("priorityTiers", f"priorities must be integers from {allowed}")
    if len(set(tiers)) != len(tiers):
        raise _invalid("priorityTiers", "priorities must be unique")


def _check_attempts(value: int, upper: int | None) -> None:
    if upper is None:
        if value < MIN_ATTEMPTS:
            raise _invalid("maxAttempts", f"must be at least {MIN_ATTEMPTS}")
    elif not MIN_ATTEMPTS <= value <= upper:
        raise _invalid("maxAttempts", f"must be between {MIN_ATTEMPTS} and {upper}")
