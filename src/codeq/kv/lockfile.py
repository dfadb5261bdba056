"""Who holds a store's LOCK file: so that a second server on a data directory in use says so in one line."""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

# struct flock on Linux: l_type, l_whence (short), l_start, l_len (off_t), l_pid (pid_t).
_FLOCK = "@hhqqi"
_FLOCK_BUFFER = struct.calcsize(_FLOCK) + 8  # room for the platform's trailing padding


class StoreInUseError(OSError):
    """The store's directory is locked by another process (another server, or a backup restore)."""

    def __init__(self, path: str, pid: int) -> None:
        super().__init__(f"data directory {path} is in use by another process (pid {pid})")
        self.path = path
        self.pid = pid


def lock_holder(directory: str) -> int:
    """The pid of the process holding RocksDB's write lock on `directory`'s LOCK file, or 0.

    RocksDB locks LOCK with a POSIX record lock (fcntl F_SETLK); F_GETLK reports the holder
    of a conflicting lock. A lock held by this very process does not conflict, so it reads 0
    here and RocksDB's own error stands.
    """
    path = os.path.join(directory, "LOCK")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(_FLOCK_BUFFER, b"\0")
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    finally:
        os.close(fd)
    kind, _, _, _, pid = struct.unpack(_FLOCK, answer[: struct.calcsize(_FLOCK)])
    return 0 if kind == fcntl.F_UNLCK else int(pid)


def check_not_in_use(directory: str) -> None:
    """Raise StoreInUseError when another process holds `directory`'s store lock."""
    pid = lock_holder(directory)
    if pid:
        raise StoreInUseError(directory, pid)


@contextmanager
def holding(directory: str) -> Iterator[None]:
    """Hold `directory`'s store lock, as RocksDB does, for as long as the block runs: a server
    started meanwhile is refused, while this process reads the store (opened read-only,
    which takes no lock). The LOCK file's contents stay as they are.

    A POSIX lock is dropped when its process closes ANY descriptor of the file, which
    `lock_holder` (and so opening a RocksKV) does: open the store first, then hold it.
    """
    path = os.path.join(directory, "LOCK")
    if not os.path.isfile(path):
        yield
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreInUseError(directory, lock_holder(directory)) from None
        yield
    finally:
        os.close(fd)
