"""`codeq cluster init` and `codeq reshard`: a node's data made into a new Raft node's, or into
another number of shards, offline, with a count and checksum of every task to show nothing
was lost (the key routing is engine/reshard.py's)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer

from codeq.cli.output import EXIT_REFUSED, EXIT_USAGE, emit_json
from codeq.engine import keys
from codeq.engine.reshard import InconsistentShardError, Tally, UnknownKeyError, rewrite, verify
from codeq.kv.lockfile import StoreInUseError, holding, lock_holder
from codeq.kv.rocks import RocksKV
from codeq.replication.snapshot import APPLIED_KEY, ORIGIN_KEY, RESTORING_KEY
from codeq.service.backup import MANIFEST

TASKS = (keys.LIVE, keys.FINISHED, keys.RESULT)


def refuse(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    """One plain line on stderr (no wrapping: scripts and tests read it whole) and the exit code."""
    print(f"codeq: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def store_dirs(root: str, num_shards: int) -> list[str]:
    """Where a node keeps its stores: the data directory itself, or one `shard<i>` per shard."""
    if num_shards == 1:
        return [root]
    return [os.path.join(root, f"shard{number}") for number in range(num_shards)]


def refuse_in_use(root: str) -> None:
    """Exit 2 with the line `codeq serve` prints when a live process holds a store under `root`."""
    candidates = [root]
    if os.path.isdir(root):
        candidates += sorted(str(path) for path in Path(root).glob("shard*") if path.is_dir())
    for directory in candidates:
        pid = lock_holder(directory)
        if pid:
            refuse(str(StoreInUseError(directory, pid)), EXIT_USAGE)


def refuse_used_target(target: str, source: str) -> None:
    refuse_in_use(target)
    if os.path.exists(target) and (not os.path.isdir(target) or any(os.scandir(target))):
        refuse(f"{target} is not empty: give a new or empty directory")
    real_target, real_source = os.path.realpath(target), os.path.realpath(source)
    if os.path.commonpath([real_target, real_source]) in (real_target, real_source):
        refuse(f"{target} and {source} overlap: give a directory outside the source")


@contextmanager
def opened(paths: Sequence[str], *, read_only: bool) -> Iterator[list[RocksKV]]:
    """The stores at `paths`; read-only ones under their lock, so no server opens them meanwhile."""
    stores: list[RocksKV] = []
    with ExitStack() as held:
        try:
            for path in paths:
                try:
                    stores.append(RocksKV(path, read_only=read_only))
                    if read_only:
                        held.enter_context(holding(path))  # after the open: see `holding`
                except StoreInUseError as exc:
                    refuse(str(exc), EXIT_USAGE)
                except Exception as exc:  # rocksdict raises plain exceptions for a damaged store
                    refuse(f"the store at {path} does not open: {exc}")
            yield stores
        finally:
            for store in stores:
                store.close()


def verified(paths: Sequence[str], *, counters: bool = True) -> Tally:
    """The tally of a node's stores, reopened read-only; a misplaced key is an error, and so
    (`counters`) is a DLQ counter that does not match the entries."""
    with opened(paths, read_only=True) as stores:
        try:
            return verify(stores, counters=counters)
        except InconsistentShardError as exc:
            refuse(str(exc))


def summary(tally: Tally) -> dict[str, Any]:
    return {
        "tasks": tally.count(keys.LIVE, keys.FINISHED),
        "liveTasks": tally.count(keys.LIVE),
        "results": tally.count(keys.RESULT),
        "idempotencyKeys": tally.count(keys.IDEMPOTENCY),
        "dlqEntries": tally.count(keys.DLQ),
        "tasksChecksum": tally.checksum(*TASKS),
        "keys": sum(tally.counts.values()),
        "keysChecksum": tally.checksum(),
    }


def described(numbers: dict[str, Any]) -> str:
    return (
        f"{numbers['tasks']} tasks ({numbers['liveTasks']} live), {numbers['results']} results, "
        f"{numbers['idempotencyKeys']} idempotency keys, {numbers['dlqEntries']} DLQ entries; "
        f"checksum of tasks and results {numbers['tasksChecksum']}, "
        f"of all {numbers['keys']} keys {numbers['keysChecksum']}"
    )


# -- codeq reshard ----------------------------------------------------------------------------


def source_shards(root: str) -> int:
    """How many shards the stopped node's data directory holds (1: the store is the directory)."""
    if not os.path.isdir(root):
        refuse(f"{root} is not a directory")
    if os.path.isdir(os.path.join(root, "raft")):
        refuse(
            f"{root} is a Raft node's data (its store may lag its log): take a `codeq backup` of "
            "the leader, `codeq restore` it into a new directory, and reshard that"
        )
    single = os.path.isfile(os.path.join(root, "CURRENT"))
    count = 0
    while os.path.isfile(os.path.join(root, f"shard{count}", "CURRENT")):
        count += 1
    if single and count:
        refuse(f"{root} holds both a store and shard directories: not one node's data")
    if not single and not count:
        refuse(f"{root} holds no codeq store")
    return 1 if single else count


def reshard(source: str, target: str, num_shards: int, as_json: bool) -> None:
    """Rewrite the stopped node's data in `source` into `num_shards` shards in `target`."""
    if num_shards < 1:
        refuse("--shards must be at least 1", EXIT_USAGE)
    refuse_in_use(source)
    old_shards = source_shards(source)
    refuse_used_target(target, source)
    created = not os.path.exists(target)
    try:
        with (
            opened(store_dirs(source, old_shards), read_only=True) as sources,
            opened(store_dirs(target, num_shards), read_only=False) as targets,
        ):
            written = rewrite(sources, targets, drop=lambda key: key.startswith(b"raft/"))
    except UnknownKeyError as exc:
        _discard(target, created)
        refuse(str(exc))
    before, after = summary(written.source), summary(verified(store_dirs(target, num_shards)))
    if before != after:
        refuse(f"the rewritten data does not match its source: before {before}, after {after}")
    report = {"from": source, "to": target, "fromShards": old_shards, "numShards": num_shards, **after}
    if as_json:
        emit_json(report)
        return
    print(f"resharded {source} ({old_shards} shard(s)) into {target} ({num_shards} shard(s))")
    print(f"source and target both hold {described(after)}")
    print(f"serve with: codeq serve --data {target}{_shards_flag(num_shards)}")


def _discard(target: str, created: bool) -> None:
    """Remove what a failed rewrite wrote (the directory too, if this run made it)."""
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for entry in os.scandir(target):
        shutil.rmtree(entry.path, ignore_errors=True)


def _shards_flag(num_shards: int) -> str:
    return f" --shards {num_shards}" if num_shards > 1 else ""


# -- codeq cluster init -----------------------------------------------------------------------


def backup_manifest(backup: str) -> tuple[int, str]:
    """The backup's shard count and id (a digest of its manifest, which names when it began)."""
    try:
        raw = Path(backup, MANIFEST).read_bytes()
        num_shards = int(json.loads(raw)["numShards"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        refuse(f"{backup} is not a codeq backup ({MANIFEST}: {exc})")
    if num_shards < 1:
        refuse(f"{backup}/{MANIFEST} names {num_shards} shards")
    return num_shards, hashlib.sha256(raw).hexdigest()[:16]


def checked_backup(backup: str, num_shards: int) -> Tally:
    """The backup's tally, once every shard copy is there, opens, finished no snapshot install
    halfway and holds only keys its shard owns (a copy of another shard count's data would not)."""
    paths = [os.path.join(backup, f"shard{number}") for number in range(num_shards)]
    for path in paths:
        if not os.path.isdir(path):
            refuse(f"{path} is missing: not a complete codeq backup")
    with opened(paths, read_only=True) as stores:
        for path, store in zip(paths, stores, strict=True):
            if store.get(RESTORING_KEY) is not None:
                refuse(f"{path} was copied during a Raft snapshot install: not a consistent backup")
    # The counters are copied as they are: a backup is taken as the server kept it.
    return verified(paths, counters=False)


def init_node(backup: str, data: str, num_shards: int | None, as_json: bool) -> None:
    """Make `data` the data directory of a node of a new Raft cluster, from `backup`."""
    backup_shards, backup_id = backup_manifest(backup)
    if num_shards is not None and num_shards != backup_shards:
        refuse(
            f"the backup has {backup_shards} shard(s), not {num_shards}: a cluster starts with its "
            "backup's shard count (`codeq reshard` a restored copy to change it)",
            EXIT_USAGE,
        )
    refuse_used_target(data, backup)
    before = summary(checked_backup(backup, backup_shards))
    targets = store_dirs(data, backup_shards)
    for number, target in enumerate(targets):
        shutil.copytree(os.path.join(backup, f"shard{number}"), target, dirs_exist_ok=True)
        os.chmod(target, 0o700)
    # A fresh log: the copy's applied index would make the new log's first entries look
    # applied already (replication/group.py). The origin is compared with the peers'.
    with opened(targets, read_only=False) as stores:
        for store in stores:
            store.write({APPLIED_KEY: None, RESTORING_KEY: None, ORIGIN_KEY: backup_id.encode()}, sync=True)
    after = summary(verified(targets, counters=False))
    if before != after:
        refuse(f"the copy does not match the backup: backup {before}, copy {after}")
    report = {"backup": backup, "backupId": backup_id, "data": data, "numShards": backup_shards, **after}
    if as_json:
        emit_json(report)
        return
    print(f"initialised {data} from backup {backup_id} ({backup_shards} shard(s)): {described(after)}")
    print(
        "initialise every node of the new cluster from this same backup, then start each with its "
        f"RAFT_* settings: codeq serve --data {data}{_shards_flag(backup_shards)}"
    )
