"""Topic administration (spec 02 §4.15): admin-only, always in the caller's tenant.

Writes are engine commands on shard 0, so under Raft they replicate like any other command
(no separate catalog protocol); reads are local.
"""

from __future__ import annotations

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import NotFound
from codeq.core.topics import Topic, TopicPolicy, topic_id, validate_identity, validate_policy
from codeq.engine import commands as c
from codeq.service.node import Node, ShardHandle


class TopicService:
    def __init__(self, node: Node, clock: Clock, max_attempts: int) -> None:
        self.node = node
        self.clock = clock
        self.max_attempts = max_attempts  # the tasks' bound (limits.maxAttempts), topics' too

    @property
    def _home(self) -> ShardHandle:
        return self.node.shards[0]  # the catalog lives on the first shard, like the reference's

    async def put(self, principal: Principal, name: str, policy: TopicPolicy) -> tuple[Topic, bool]:
        """Create or update; returns the topic and whether it was created."""
        principal.require_admin()
        validate_identity(principal.tenant, name)
        policy = validate_policy(name, policy, self.max_attempts)  # before proposing: a 422 costs no write
        command = c.PutTopic(
            now_ms=self.clock.now_ms(),
            tenant=principal.tenant,
            name=name,
            priority_tiers=list(policy.priority_tiers),
            max_attempts=policy.max_attempts,
            dead_letter_topic_ref=policy.dead_letter_topic_ref,
            retention_seconds=policy.retention_seconds,
            max_consumers=policy.max_consumers,
        )
        outcome = await self._home.submit(command)
        return outcome.topic, outcome.created

    async def get(self, principal: Principal, name: str) -> Topic:
        principal.require_admin()
        validate_identity(principal.tenant, name)
        topic: Topic | None = await self._home.read("find_topic", principal.tenant, name)
        if topic is None:
            raise NotFound(f'queue topic "{topic_id(principal.tenant, name)}" not found')
        return topic

    async def delete(self, principal: Principal, name: str) -> bool:
        """Idempotent: returns whether the topic existed."""
        principal.require_admin()
        validate_identity(principal.tenant, name)
        command = c.DeleteTopic(now_ms=self.clock.now_ms(), tenant=principal.tenant, name=name)
        outcome = await self._home.submit(command)
        return outcome.existed
