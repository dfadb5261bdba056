"""The online backup route: `POST /admin/backup` (beyond the reference)."""

from __future__ import annotations

from codeq.service.container import Services
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.body import decode
from codeq.transport.http.errors import json_reply
from codeq.wire import http as w


class BackupRoutes:
    def __init__(self, services: Services, max_body_bytes: int) -> None:
        self.s = services
        self.max_body = max_body_bytes

    async def backup(self, request: Request) -> Reply:
        """`{"dest": "/abs/path", "shard": N}`: checkpoint one shard, or every shard without `shard`."""
        # An operator power (codeq:operator), not a tenant admin's: a backup holds every tenant.
        principal = self.s.auth.producer(request.header(b"authorization"))
        body = decode(await request.body(self.max_body), w.BackupRequest)
        copies = await self.s.backup.backup(principal, body.dest, body.shard)
        shards = [w.BackupShardJSON(shard=c.shard, path=c.path, bytes=c.bytes, files=c.files) for c in copies]
        reply = w.BackupJSON(dest=body.dest, num_shards=len(self.s.backup.checkpoints), shards=shards)
        return json_reply(reply)
