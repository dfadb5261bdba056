"""Shard routing: FNV-1a-64 of the routing key, modulo the shard count (spec 05 §12)."""

from __future__ import annotations

import os

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & _MASK
    return h


def shard_of(task_id: str, num_shards: int) -> int:
    """The shard that holds every key of this task."""
    if num_shards <= 1:
        return 0
    return fnv1a64(task_id.encode()) % num_shards


def key_shard(tenant: str, idempotency_key: str, num_shards: int) -> int:
    """The shard that holds a tenant's idempotency key (and the task a create with it makes)."""
    if num_shards <= 1:
        return 0
    return fnv1a64(tenant.encode() + b"\0" + idempotency_key.encode()) % num_shards


def uuid4() -> str:
    """A random (version 4) UUID string, without the cost of building a `uuid.UUID`."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def new_task_id(
    num_shards: int, *, tenant: str = "", idempotency_key: str = "", prefer: frozenset[int] = frozenset()
) -> str:
    """A fresh UUIDv4. With an idempotency key, one that routes to the key's own shard.

    Routing the task by its key keeps the key and its task on one shard, so the duplicate
    check and the insert are one atomic apply (spec 05 gap 8). Drawing until the id lands
    there takes `num_shards` draws on average. Without a key, `prefer` (the shards whose Raft
    group this node leads) keeps the id on this node, so a create is never redirected twice
    (spec 06 gap 9).
    """
    if num_shards <= 1:
        return uuid4()
    if not idempotency_key:
        if not prefer or len(prefer) == num_shards:
            return uuid4()
        while True:
            task_id = uuid4()
            if shard_of(task_id, num_shards) in prefer:
                return task_id
    target = key_shard(tenant, idempotency_key, num_shards)
    while True:
        task_id = uuid4()
        if shard_of(task_id, num_shards) == target:
            return task_id
