"""Online backups: a consistent RocksDB checkpoint of every shard, written on the server's disk.

Layout of a backup directory: `codeq-backup.json` (the shard count) and one checkpoint per
shard in `shard<N>/`, each a complete RocksDB directory. Each shard's copy holds every write
acknowledged before its checkpoint began; shards are independent stores, so the copies are
taken one after another, not at one instant across shards (no write spans two shards).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from codeq.auth.principal import Principal
from codeq.core.clock import Clock
from codeq.core.errors import Conflict, Forbidden, InvalidInput, WrongState

MANIFEST = "codeq-backup.json"
BACKUP_FORMAT = 1

CheckpointFn = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ShardCopy:
    shard: int
    path: str
    bytes: int
    files: int


class BackupService:
    def __init__(
        self,
        checkpoints: Sequence[CheckpointFn],
        clock: Clock,
        *,
        enabled: bool = True,
        root: str = "",
        root_required: bool = False,
    ) -> None:
        self.checkpoints = list(checkpoints)
        self.clock = clock
        self.enabled = enabled  # False for the memory store: nothing on disk to copy
        # An admin token must not be a way to write anywhere the server may: `backupRoot`.
        self.root = os.path.realpath(root) if root else ""
        # A backup copies every tenant's data: outside dev it is an operator's act, allowed
        # only once the operator has said where backups may go.
        self.root_required = root_required

    async def backup(self, principal: Principal, dest: str, shard: int | None = None) -> list[ShardCopy]:
        """Checkpoint one shard, or all of them, into `dest` (an absolute path on this server)."""
        principal.require_admin()
        if not self.enabled:
            raise WrongState("the memory store keeps nothing on disk to back up")
        if self.root_required and not self.root:
            raise Forbidden("backups are disabled: set backupRoot (BACKUP_ROOT) to allow them")
        if not dest or not os.path.isabs(dest):
            raise InvalidInput("dest must be an absolute path on the server", field="dest")
        if self.root and os.path.commonpath([self.root, os.path.realpath(dest)]) != self.root:
            raise InvalidInput(f"dest must be inside the backup root {self.root}", field="dest")
        count = len(self.checkpoints)
        if shard is not None and not 0 <= shard < count:
            raise InvalidInput(f"shard must be between 0 and {count - 1}", field="shard")
        numbers = range(count) if shard is None else [shard]
        for number in numbers:
            if os.path.exists(shard_path(dest, number)):
                raise Conflict(f"{shard_path(dest, number)} exists already", field="dest")
        try:
            os.makedirs(dest, mode=0o700, exist_ok=True)
            _write_manifest(dest, count, self.clock.now_ms())
            copies = []
            for number in numbers:
                path = shard_path(dest, number)
                await self.checkpoints[number](path)
                files, size = directory_size(path)
                copies.append(ShardCopy(number, path, size, files))
        except OSError as exc:
            raise InvalidInput(f"cannot write the backup: {exc.strerror or exc}", field="dest") from None
        return copies


def shard_path(root: str, number: int) -> str:
    return os.path.join(root, f"shard{number}")


def directory_size(path: str) -> tuple[int, int]:
    """(files, bytes) under `path`."""
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(folder, name))
    return files, size


def _write_manifest(dest: str, num_shards: int, now_ms: int) -> None:
    manifest = {"format": BACKUP_FORMAT, "numShards": num_shards, "createdMs": now_ms}
    with open(os.path.join(dest, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
