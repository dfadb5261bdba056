"""Rewriting a node's stores into another number of shards: where each key goes, and the tally
that proves every key arrived unchanged.

A task's keys (its record, result, retention, DLQ, listing and outbox entries) follow its id
(`shard_of`); an idempotency key and its expiry entry follow the key (`key_shard`), since a
create with that key is routed there; topics, subscriptions and schedules stay on shard 0;
the store format marker goes to every shard. The DLQ counters are per shard, so each new
shard's are counted again from the DLQ entries it receives.

After a reshard a key's task may live on another shard than the key (the id was drawn for the
old shard count): `service/idempotency.py` finds it there, so a retried create still answers
with the original task.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from codeq.engine import keys
from codeq.engine.outbox import OutboxEntry
from codeq.engine.shards import key_shard, shard_of
from codeq.kv.api import KV

EVERY_SHARD = -1  # the store format marker
RECOUNTED = -2  # the DLQ counters: counted again from the entries each new shard holds
FOREIGN = -3  # not an engine key (replication's `raft/…`): the caller decides

_ALL = (b"", b"\xff" * 16)
_BATCH = 1024
_SUM_MODULUS = 1 << 128
_decode_outbox = msgspec.msgpack.Decoder(OutboxEntry).decode

# Prefix -> the task id a key of that range belongs to.
_TASK_OF: dict[bytes, Callable[[bytes, bytes], str]] = {
    keys.LIVE: lambda key, value: key[len(keys.LIVE) :].decode(),
    keys.FINISHED: lambda key, value: key[len(keys.FINISHED) :].decode(),
    keys.RESULT: lambda key, value: key[len(keys.RESULT) :].decode(),
    keys.RETENTION: lambda key, value: keys.split_retention(key)[1],
    keys.DLQ: lambda key, value: keys.split_dlq(key),
    keys.FINISHED_BY_STATE: lambda key, value: keys.finished_by_state_task_id(key),
    keys.OUTBOX: lambda key, value: _decode_outbox(value).task_id,
}
# Prefix -> the (tenant, idempotency key) a key of that range belongs to.
_IDEMPOTENCY_OF: dict[bytes, Callable[[bytes], tuple[str, str]]] = {
    keys.IDEMPOTENCY: keys.split_idempotency,
    keys.IDEMPOTENCY_EXPIRY: lambda key: keys.split_idempotency_expiry(key)[1:],
}
_SHARD_ZERO = frozenset((keys.SUBSCRIPTION, keys.SUBSCRIPTION_EXPIRY, keys.TOPIC, keys.SCHEDULE))


class InconsistentShardError(Exception):
    """A store holds a key its shard does not own, or DLQ counters that its entries do not match."""


class UnknownKeyError(Exception):
    """A key outside every range this version knows: rewriting would lose it."""


def route(key: bytes, value: bytes, num_shards: int) -> int:
    """The shard of `num_shards` that must hold `key`, or EVERY_SHARD, RECOUNTED or FOREIGN."""
    prefix = key[:2]
    task_of = _TASK_OF.get(prefix)
    if task_of is not None:
        return shard_of(task_of(key, value), num_shards)
    idempotency_of = _IDEMPOTENCY_OF.get(prefix)
    if idempotency_of is not None:
        return key_shard(*idempotency_of(key), num_shards)
    if prefix in _SHARD_ZERO:
        return 0
    if prefix == keys.DLQ_COUNT:
        return RECOUNTED
    if key == keys.FORMAT:
        return EVERY_SHARD
    return FOREIGN


@dataclass(slots=True)
class Tally:
    """Keys counted and checksummed by range (their two-byte prefix). The checksum of a range
    is the sum of one hash per (key, value), so it does not depend on which shard or in which
    order a key is met: equal tallies of the source and the target mean the same keys with
    the same values."""

    counts: Counter[bytes] = field(default_factory=Counter)
    sums: dict[bytes, int] = field(default_factory=dict)

    def add(self, key: bytes, value: bytes) -> None:
        digest = hashlib.blake2b(len(key).to_bytes(4, "big") + key + value, digest_size=16).digest()
        prefix = key[:2]
        self.counts[prefix] += 1
        self.sums[prefix] = (self.sums.get(prefix, 0) + int.from_bytes(digest, "big")) % _SUM_MODULUS

    def count(self, *prefixes: bytes) -> int:
        return sum(self.counts[prefix] for prefix in prefixes)

    def checksum(self, *prefixes: bytes) -> str:
        """One hex digest over the given ranges (every range when none is given)."""
        chosen = prefixes or tuple(sorted(self.counts))
        total = sum(self.sums.get(prefix, 0) for prefix in chosen) % _SUM_MODULUS
        return f"{total:032x}"

    def by_range(self) -> dict[str, int]:
        return {prefix.decode(errors="replace"): n for prefix, n in sorted(self.counts.items())}


@dataclass(slots=True)
class Rewritten:
    source: Tally
    dropped: Counter[bytes]  # foreign keys left behind, by prefix
    dlq_counted: int  # the DLQ counters' total in the source, for the report


def rewrite(sources: Sequence[KV], targets: Sequence[KV], drop: Callable[[bytes], bool]) -> Rewritten:
    """Copy every key of `sources` to the target that must hold it, with the DLQ counters
    counted again; `drop(key)` says whether a foreign key may be left behind (else it is an
    UnknownKeyError). The targets are written unsynced, then synced once each."""
    writer = _Writer(targets)
    tally = Tally()
    dropped: Counter[bytes] = Counter()
    dlq_counted = 0
    for key, value in _every_key(sources):
        shard = route(key, value, len(targets))
        if shard == FOREIGN:
            if not drop(key):
                raise UnknownKeyError(f"unknown key {key[:40]!r}: this codeq version cannot reshard it")
            dropped[key[:5]] += 1
        elif shard == RECOUNTED:
            dlq_counted += keys.read_be8(value)
        elif shard == EVERY_SHARD:
            for number in range(len(targets)):
                writer.put(number, key, value)
        else:
            tally.add(key, value)
            writer.put(shard, key, value)
    writer.finish()
    return Rewritten(tally, dropped, dlq_counted)


def verify(stores: Sequence[KV], *, counters: bool = True) -> Tally:
    """Tally the keys of a sharded node's stores, checking that each store holds only keys its
    shard owns and (`counters`) that its DLQ counters match its DLQ entries."""
    tally = Tally()
    for number, store in enumerate(stores):
        counted: dict[bytes, int] = {}
        entries: Counter[bytes] = Counter()
        for key, value in store.scan(*_ALL):
            shard = route(key, value, len(stores))
            if shard == RECOUNTED:
                if keys.read_be8(value):  # a counter back at 0 stays stored: the same as none
                    counted[key] = keys.read_be8(value)
                continue
            if shard in (EVERY_SHARD, FOREIGN):
                continue
            if shard != number:
                raise InconsistentShardError(
                    f"shard {number} holds {key[:40]!r}, which belongs to shard {shard}"
                )
            tally.add(key, value)
            if key[:2] == keys.DLQ:
                entries[_dlq_count_key(key)] += 1
        if counters and counted != dict(entries):
            raise InconsistentShardError(f"shard {number}'s DLQ counters do not match its DLQ entries")
    return tally


def _every_key(stores: Iterable[KV]) -> Iterable[tuple[bytes, bytes]]:
    for store in stores:
        yield from store.scan(*_ALL)


def _dlq_count_key(dlq_key: bytes) -> bytes:
    """C/<tenant>\\0<command key> of the entry D/<tenant>\\0<command key>\\0<id>."""
    return keys.DLQ_COUNT + dlq_key[len(keys.DLQ) :].rsplit(b"\0", 1)[0]


class _Writer:
    """Batched writes to the target stores, with each one's DLQ counters counted on the way."""

    def __init__(self, targets: Sequence[KV]) -> None:
        self.targets = targets
        self.pending: list[dict[bytes, bytes | None]] = [{} for _ in targets]
        self.dlq_counts: list[Counter[bytes]] = [Counter() for _ in targets]

    def put(self, shard: int, key: bytes, value: bytes) -> None:
        batch = self.pending[shard]
        batch[key] = value
        if key[:2] == keys.DLQ:
            self.dlq_counts[shard][_dlq_count_key(key)] += 1
        if len(batch) >= _BATCH:
            self.targets[shard].write(batch, sync=False)
            self.pending[shard] = {}

    def finish(self) -> None:
        for shard, target in enumerate(self.targets):
            batch = self.pending[shard]
            batch.update({key: keys.be8(n) for key, n in self.dlq_counts[shard].items()})
            target.write(batch, sync=True)
