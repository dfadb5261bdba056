"""Task ids and shard routing: valid random UUIDs, FNV-1a routing, ids that follow their key."""

from __future__ import annotations

import os
import random
import re
import uuid

from codeq.engine import shards as shards_module
from codeq.engine.shards import fnv1a64, new_task_id, shard_of, uuid4

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_distinct_version_4_uuids() -> None:
    ids = [uuid4() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    for task_id in ids:
        assert UUID4.match(task_id), task_id
        parsed = uuid.UUID(task_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    uuid4()  # the parent holds random digits it has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, ",".join(uuid4() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        child = set(pipe.read().decode().split(","))
    parent = {uuid4() for _ in range(50)}
    assert len(child) == 50 and not child & parent


def test_fnv1a64_matches_the_published_test_vectors() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def _fnv_as_specified(data: bytes, h: int = 0xCBF29CE484222325) -> int:
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


def test_fnv1a64_in_32_bit_halves_is_the_same_hash() -> None:
    # The compiled module hashes in halves (machine words), the interpreted one in big ints;
    # both must be the specified function, from any state.
    draw = random.Random(16)
    for _ in range(2_000):
        data = draw.randbytes(draw.randrange(0, 80))
        state = draw.getrandbits(64)
        expected = _fnv_as_specified(data, state)
        assert shards_module._fnv_in_halves(data, state) == expected
        assert fnv1a64(data, state) == expected
        assert fnv1a64(data) == _fnv_as_specified(data)


def test_an_id_with_an_idempotency_key_lands_on_the_keys_shard() -> None:
    target = fnv1a64(b"acme\0order-7") % 4
    for _ in range(20):
        assert shard_of(new_task_id(4, tenant="acme", idempotency_key="order-7"), 4) == target
    assert shard_of(new_task_id(1, tenant="acme", idempotency_key="order-7"), 1) == 0


def test_an_id_drawn_for_preferred_shards_is_a_version_4_uuid_routed_there() -> None:
    for shards, prefer in ((2, {0}), (4, {1, 3}), (40, {39})):  # 40: more shards than hex digits
        for _ in range(200):
            task_id = new_task_id(shards, prefer=frozenset(prefer))
            assert UUID4.match(task_id), task_id
            assert fnv1a64(task_id.encode()) % shards in prefer
            assert shard_of(task_id, shards) in prefer
