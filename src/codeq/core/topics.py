"""Queue topics: a tenant-scoped catalog of queue policies (spec 01 §1.5 and §10.2).

Catalog metadata only, as in the reference: nothing in enqueue or claim reads a topic yet
(spec 01 gap 19), and the API says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codeq.core.errors import Unprocessable
from codeq.core.names import TENANT_PATTERN, is_valid_tenant

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_MESSAGE = "must be a DNS label with at most 63 characters"
MAX_TIERS = 10
MAX_TIER = 10
MAX_TOPIC_ATTEMPTS = 100
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


def validate_policy(name: str, policy: TopicPolicy) -> TopicPolicy:
    """The normalised policy (tiers sorted), or `Unprocessable` naming the first bad field."""
    tiers = policy.priority_tiers
    if not 1 <= len(tiers) <= MAX_TIERS:
        raise _invalid("priorityTiers", f"must contain between 1 and {MAX_TIERS} priorities")
    if any(not 0 <= tier <= MAX_TIER for tier in tiers):
        raise _invalid("priorityTiers", f"priorities must be integers from 0 through {MAX_TIER}")
    if len(set(tiers)) != len(tiers):
        raise _invalid("priorityTiers", "priorities must be unique")
    if not 1 <= policy.max_attempts <= MAX_TOPIC_ATTEMPTS:
        raise _invalid("maxAttempts", f"must be between 1 and {MAX_TOPIC_ATTEMPTS}")
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
