"""Which server process holds the bench's connections, from /proc: with a process per shard
the kernel spreads them (`SO_REUSEPORT`), and how it spread a few connections decides how much
work crosses processes, so `codeq bench` reports it beside the forwarded share (ADR 0009)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

ESTABLISHED = "01"  # the `st` column of /proc/net/tcp


def port_of(address: str) -> int | None:
    """The port of `host:port` or of a URL (None when it names none)."""
    if "//" not in address:
        address = "//" + address
    try:
        return urlsplit(address).port
    except ValueError:
        return None


def connections_by_process(pids: dict[str, int], ports: dict[str, int]) -> dict[str, dict[str, int]]:
    """For each named process, its established connections per named listening port."""
    by_inode = _established_on(set(ports.values()))
    names = {port: name for name, port in ports.items()}
    found: dict[str, dict[str, int]] = {}
    for process, pid in pids.items():
        counts: dict[str, int] = {}
        for inode in _socket_inodes(pid):
            port = by_inode.get(inode)
            if port is not None:
                counts[names[port]] = counts.get(names[port], 0) + 1
        if counts:
            found[process] = dict(sorted(counts.items()))
    return found


def _established_on(ports: set[int]) -> dict[int, int]:
    """Socket inode -> local port, for established TCP connections whose local port is one of `ports`."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                rows = lines.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            port = int(fields[1].rpartition(":")[2], 16)
            if port in ports and fields[3] == ESTABLISHED:
                found[int(fields[9])] = port
    return found


def _socket_inodes(pid: int) -> list[int]:
    inodes = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(int(target[8:-1]))
    return inodes
