"""`codeq backup` and `codeq restore`: online checkpoints on the server, data directories from them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from codeq.cli.output import EXIT_REFUSED, emit_json, errors, fail, run
from codeq.client import AsyncAdmin
from codeq.service.backup import MANIFEST
from codeq.wire.http import BackupShardJSON


def backup(url: str, token: str, dest: str, as_json: bool) -> None:
    """Ask the server for a checkpoint of each shard in turn, with a progress bar over shards."""
    admin = AsyncAdmin(url, token, timeout=600.0)
    copies: list[BackupShardJSON] = []

    async def all_shards() -> int:
        async with admin:
            with _progress() as progress:
                first = await admin.backup(dest, 0)
                total = first.num_shards
                bar = progress.add_task("checkpoint", total=total)
                copies.extend(first.shards)
                progress.advance(bar)
                for number in range(1, total):
                    copies.extend((await admin.backup(dest, number)).shards)
                    progress.advance(bar)
                return total

    total = run(all_shards)
    size = sum(copy.bytes for copy in copies)
    if as_json:
        emit_json({"dest": dest, "numShards": total, "bytes": size, "shards": copies})
    else:
        print(f"backed up {total} shard(s), {size:,} bytes, to {dest} on the server")


def restore(source: str, data: str, as_json: bool) -> None:
    """Copy a backup's shard checkpoints into a new data directory, then check that each opens."""
    num_shards = _manifest(source)
    target = Path(data)
    if target.exists() and any(target.iterdir()):
        fail(f"{data} is not empty: restore into a new directory", EXIT_REFUSED)
    pairs = [
        (Path(source) / f"shard{n}", target if num_shards == 1 else target / f"shard{n}")
        for n in range(num_shards)
    ]
    for src, _ in pairs:
        if not src.is_dir():
            fail(f"{src} is missing: not a complete codeq backup", EXIT_REFUSED)
    files = [
        (path, dst / path.relative_to(src)) for src, dst in pairs for path in src.rglob("*") if path.is_file()
    ]
    total = sum(path.stat().st_size for path, _ in files)
    with _progress(bytes_=True) as progress:
        bar = progress.add_task("restore", total=total)
        for path, destination in files:
            destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            progress.advance(bar, path.stat().st_size)
    for _, dst in pairs:
        _prepare(dst)
    if as_json:
        emit_json({"data": data, "numShards": num_shards, "bytes": total})
    else:
        shards = f" --shards {num_shards}" if num_shards > 1 else ""
        print(
            f"restored {num_shards} shard(s), {total:,} bytes; serve with: codeq serve --data {data}{shards}"
        )


def _manifest(source: str) -> int:
    try:
        with open(os.path.join(source, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
        num_shards = int(manifest["numShards"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"{source} is not a codeq backup ({MANIFEST}: {exc})", EXIT_REFUSED)
    if num_shards < 1:
        fail(f"{source}/{MANIFEST} names {num_shards} shards", EXIT_REFUSED)
    return num_shards


def _prepare(path: Path) -> None:
    """Open the restored store once (it must open cleanly) and forget the Raft log position a
    replica's copy carries: the restored directory starts a new log, whose first entries must
    be applied, not skipped as already applied (replication/snapshot.py)."""
    from codeq.kv.rocks import RocksKV  # the only local store access of the CLI
    from codeq.replication.snapshot import APPLIED_KEY

    try:
        store = RocksKV(str(path))
    except Exception as exc:  # rocksdict raises plain exceptions for a damaged store
        fail(f"the restored store at {path} does not open: {exc}", EXIT_REFUSED)
    try:
        store.write({APPLIED_KEY: None}, sync=True)
    finally:
        store.close()


def _progress(*, bytes_: bool = False) -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn()]
    columns.append(DownloadColumn() if bytes_ else TextColumn("{task.completed}/{task.total} shards"))
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=errors, transient=True)
