"""Shard routing: FNV-1a-64 of the routing key, modulo the shard count (spec 05 §12)."""

from __future__ import annotations

import os
from typing import Final

from mypy_extensions import i64

_FNV_OFFSET: Final = 14695981039346656037
_FNV_PRIME: Final = 1099511628211
_MASK: Final = (1 << 64) - 1
_LOW: Final = (1 << 32) - 1
_PRIME_LOW: Final = _FNV_PRIME - (1 << 40)  # 0x1b3: the prime is 2**40 + 0x1b3
# Whether this module runs compiled (ADR 0010): then `i64` is a machine word, else an int.
_COMPILED: Final = not __file__.endswith(".py")


_HEX = "0123456789abcdef"
# Routes of recent ids: a task's id is hashed when it is drawn, grouped and finished; this
# keeps the pure-Python hash (~4 µs) to once per task. Bounded: cleared when it is full.
_ROUTES: dict[tuple[str, int], int] = {}
_ROUTES_MAX = 65_536


def fnv1a64(data: bytes, h: int = _FNV_OFFSET) -> int:
    """FNV-1a-64 of `data`, continuing from state `h` (the offset basis: from the start)."""
    if _COMPILED:
        return _fnv_in_halves(data, h)
    for byte in data:  # as Python, one big-integer product per byte is the cheaper way
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def _fnv_in_halves(data: bytes, h: int) -> int:
    """FNV-1a-64 in two 32-bit halves held as `i64`: the prime is 2**40 + 0x1b3, so a step is
    two small products and a shift. Compiled, no intermediate leaves a machine word, where a
    64-bit product of Python ints is a big integer at every byte (0.25 µs an id against 8)."""
    lo: i64 = h & _LOW
    hi: i64 = h >> 32
    for i in range(len(data)):
        byte: i64 = data[i]
        lo ^= byte
        product = lo * _PRIME_LOW
        hi = (hi * _PRIME_LOW + (product >> 32) + (lo << 8)) & _LOW
        lo = product & _LOW
    high: int = hi
    low: int = lo
    return (high << 32) | low


def shard_of(task_id: str, num_shards: int) -> int:
    """The shard that holds every key of this task."""
    if num_shards <= 1:
        return 0
    route = _ROUTES.get((task_id, num_shards))
    if route is None:
        route = _remember(task_id, num_shards, fnv1a64(task_id.encode()) % num_shards)
    return route


def _remember(task_id: str, num_shards: int, route: int) -> int:
    if len(_ROUTES) >= _ROUTES_MAX:
        _ROUTES.clear()
    _ROUTES[(task_id, num_shards)] = route
    return route


def key_shard(tenant: str, idempotency_key: str, num_shards: int) -> int:
    """The shard that holds a tenant's idempotency key (and the task a create with it makes)."""
    if num_shards <= 1:
        return 0
    return fnv1a64(tenant.encode() + b"\0" + idempotency_key.encode()) % num_shards


# The variant digit of a UUIDv4 (binary 10xx) for each random hex digit in its place.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in _HEX}


class _RandomHex:
    """Random hex digits from `os.urandom`, drawn 4 KiB at a time rather than 16 bytes per id
    (a system call each); the pool is dropped in a forked child so that no two processes
    hand out the same digits."""

    def __init__(self) -> None:
        self.pool = ""
        self.at = 0

    def take32(self) -> str:
        at = self.at
        if at >= len(self.pool):
            self.pool, at = os.urandom(4096).hex(), 0
        self.at = at + 32
        return self.pool[at : at + 32]

    def forget(self) -> None:
        self.pool, self.at = "", 0


_RANDOM = _RandomHex()
os.register_at_fork(after_in_child=_RANDOM.forget)


def uuid4() -> str:
    """A random (version 4) UUID string, without the cost of building a `uuid.UUID`."""
    h = _RANDOM.take32()
    return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + _VARIANT[h[16]] + h[17:20] + "-" + h[20:]


def new_task_id(
    num_shards: int, *, tenant: str = "", idempotency_key: str = "", prefer: frozenset[int] = frozenset()
) -> str:
    """A fresh UUIDv4. With an idempotency key, one that routes to the key's own shard.

    Routing the task by its key keeps the key and its task on one shard, so the duplicate
    check and the insert are one atomic apply (spec 05 gap 8). Without a key, `prefer` (the
    shards whose Raft group this node leads, or the shard of this process, ADR 0009) keeps
    the id on this node, so a create is never redirected twice (spec 06 gap 9).
    """
    if num_shards <= 1:
        return uuid4()
    if idempotency_key:
        targets = frozenset({key_shard(tenant, idempotency_key, num_shards)})
    elif not prefer or len(prefer) == num_shards:
        return uuid4()
    else:
        targets = prefer
    while True:
        task_id = _ending_in(uuid4(), num_shards, targets)
        if task_id is not None:
            return task_id


def _ending_in(drawn: str, num_shards: int, targets: frozenset[int]) -> str | None:
    """`drawn` with its last hex digit (random in a UUIDv4) chosen so that the id routes to
    one of `targets`: one hash of the first 35 characters and a step per digit tried, instead
    of a whole hash per drawn id. None when no digit fits (more than 16 shards, say)."""
    head = drawn[:-1]
    state = fnv1a64(head.encode())
    start = _HEX.index(drawn[-1])
    for offset in range(16):
        digit = _HEX[(start + offset) % 16]
        route = fnv1a64(digit.encode(), state) % num_shards
        if route in targets:
            task_id = head + digit
            _remember(task_id, num_shards, route)
            return task_id
    return None
