"""Idempotency keys whose task another shard holds, as a reshard leaves them (engine/reshard.py).

A create with a key draws an id that routes to the key's shard, so the key and its task share
one shard and the duplicate check is part of the create's own apply. A reshard keeps every
task id (clients hold them) and every key on its own new shard, so the two may part; a retry
of such a create must still answer with the original task. The key's record is read on its
shard and the task on the shard its id routes to. Only a reshard writes such a record, so
nothing can change it between this read and the create's apply, which remains the check for
every key whose task shares its shard.
"""

from __future__ import annotations

from codeq.core.errors import NotFound
from codeq.core.model import Task
from codeq.engine.shards import key_shard
from codeq.service.node import Node


async def replay_elsewhere(node: Node, tenant: str, key: str, now_ms: int) -> Task | None:
    """The task an earlier create with `key` made, when another shard than the key's holds it."""
    if not key or len(node.shards) <= 1:
        return None
    home = node.shards[key_shard(tenant, key, len(node.shards))]
    task_id: str = await home.read("idempotent_task_id", tenant, key, now_ms)
    if not task_id:
        return None
    holder = node.shard_for(task_id)
    if holder is home:
        return None  # the create's own apply finds it
    try:
        return await holder.find_task(task_id, tenant)
    except NotFound:
        return None  # retention removed it: a new create may take the key over, as on one shard
