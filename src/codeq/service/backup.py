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
        self, checkpoints: Sequence[CheckpointFn], clock: Clock, *, enabled: bool = True, root: str = ""
    ) -> None:
        self.checkpoints = list(checkpoints)
        self.clock = clock
        self.enabled = enabled  # False for the memory store: nothing on disk to copy
        # A backup copies every tenant's data: an operator's act, in every env, and only to where
        # the operator has said backups may go (issue 11 item 7).
        self.root = os.path.realpath(root) if root else ""

    async def backup(self, principal: Principal, dest: str, shard: int | None = None) -> list[ShardCopy]:
        """Checkpoint one shard, or all of them, into `dest` (a new directory inside `backupRoot`).

        `dest` may exist only as a backup this server started (its manifest inside) whose
        shard copy is still missing: the CLI asks for one shard at a time into one directory.
        """
        principal.require_operator()
        if not self.enabled:
            raise WrongState("the memory store keeps nothing on disk to back up")
        if not self.root:
            raise Forbidden("backups are disabled: set backupRoot (BACKUP_ROOT) to allow them")
        target = self._target(dest)
        count = len(self.checkpoints)
        if shard is not None and not 0 <= shard < count:
            raise InvalidInput(f"shard must be between 0 and {count - 1}", field="shard")
        numbers = range(count) if shard is None else [shard]
        try:
            _prepare(target, count, [shard_path(target, n) for n in numbers], self.clock.now_ms())
            copies = []
            for number in numbers:
                path = shard_path(target, number)
                await self.checkpoints[number](path)
                _make_private(path)
                files, size = directory_size(path)
                copies.append(ShardCopy(number, shard_path(dest, number), size, files))
        except OSError as exc:
            # strerror only: the server's paths stay out of the answer.
            raise InvalidInput(f"cannot write the backup: {exc.strerror or 'error'}", field="dest") from None
        return copies

    def _target(self, dest: str) -> str:
        """The real path `dest` names, inside the root; errors never echo a server path."""
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in dest):
            raise InvalidInput("dest must not contain control characters", field="dest")
        if not dest or not os.path.isabs(dest):
            raise InvalidInput("dest must be an absolute path on the server", field="dest")
        target = os.path.realpath(dest)
        if target == self.root or os.path.commonpath([self.root, target]) != self.root:
            raise InvalidInput("dest must be inside the backup root", field="dest")
        return target


def _prepare(target: str, count: int, shard_dirs: list[str], now_ms: int) -> None:
    """Create `target` (0700) with its manifest (0600), or accept the backup already begun there."""
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    try:
        os.mkdir(target, mode=0o700)
    except FileExistsError:
        if not _is_backup_of(target, count) or any(os.path.lexists(d) for d in shard_dirs):
            raise Conflict("dest exists already", field="dest") from None
        return
    _write_manifest(target, count, now_ms)


def _is_backup_of(target: str, count: int) -> bool:
    manifest = os.path.join(target, MANIFEST)
    if os.path.islink(target) or not os.path.isfile(manifest):
        return False
    try:
        with open(manifest, encoding="utf-8") as handle:
            return bool(json.load(handle).get("numShards") == count)
    except (OSError, ValueError, AttributeError):
        return False


def _make_private(path: str) -> None:
    """Directories 0700, files 0600: a backup holds every tenant's data."""
    os.chmod(path, 0o700)
    for folder, dirs, names in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o600)


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
    fd = os.open(os.path.join(dest, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
