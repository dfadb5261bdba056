"""Applying topic commands: the catalog lives in the store like tasks, so it replicates with them.

Kept out of engine.py (which only dispatches here); reads see the writes staged by the same
apply, through the apply's context.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from codeq.core.topics import Topic, TopicPolicy, validate_identity, validate_policy
from codeq.engine import commands as c
from codeq.engine import keys
from codeq.engine.context import ApplyContext
from codeq.engine.outcomes import TopicDeleted, TopicPut

Get = Callable[[bytes], bytes | None]


class _Record(msgspec.Struct, array_like=True, frozen=True):
    tenant: str
    name: str
    priority_tiers: list[int]
    max_attempts: int
    dead_letter_topic_ref: str
    retention_seconds: int
    max_consumers: int
    version: int
    created_ms: int
    updated_ms: int


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


def encode(topic: Topic) -> bytes:
    p = topic.policy
    return _encode(
        _Record(
            topic.tenant,
            topic.name,
            list(p.priority_tiers),
            p.max_attempts,
            p.dead_letter_topic_ref,
            p.retention_seconds,
            p.max_consumers,
            topic.version,
            topic.created_ms,
            topic.updated_ms,
        )
    )


def decode(raw: bytes) -> Topic:
    r = _decode(raw)
    policy = TopicPolicy(
        tuple(r.priority_tiers), r.max_attempts, r.dead_letter_topic_ref, r.retention_seconds, r.max_consumers
    )
    return Topic(r.tenant, r.name, policy, r.version, r.created_ms, r.updated_ms)


def find(get: Get, tenant: str, name: str) -> Topic | None:
    raw = get(keys.topic(tenant, name))
    return decode(raw) if raw is not None else None


def put(ctx: ApplyContext, cmd: c.PutTopic) -> TopicPut:
    validate_identity(cmd.tenant, cmd.name)
    policy = validate_policy(
        cmd.name,
        TopicPolicy(
            tuple(cmd.priority_tiers),
            cmd.max_attempts,
            cmd.dead_letter_topic_ref,
            cmd.retention_seconds,
            cmd.max_consumers,
        ),
    )
    current = find(ctx.read, cmd.tenant, cmd.name)
    if current is None:
        topic = Topic(cmd.tenant, cmd.name, policy, 1, cmd.now_ms, cmd.now_ms)
    elif current.policy == policy:
        return TopicPut(current, created=False)  # identical: same version, same updatedAt
    else:
        topic = Topic(cmd.tenant, cmd.name, policy, current.version + 1, current.created_ms, cmd.now_ms)
    ctx.stage(keys.topic(cmd.tenant, cmd.name), encode(topic))
    return TopicPut(topic, created=current is None)


def delete(ctx: ApplyContext, cmd: c.DeleteTopic) -> TopicDeleted:
    validate_identity(cmd.tenant, cmd.name)
    key = keys.topic(cmd.tenant, cmd.name)
    if ctx.read(key) is None:
        return TopicDeleted(existed=False)
    ctx.stage(key, None)
    return TopicDeleted(existed=True)
