"""The byte layout of the store: the only module that knows how keys are built.

Live tasks (PENDING, IN_PROGRESS) have their own key range so that restart reads only
them (design D3); finished tasks, results, idempotency keys and the retention indexes
live in other ranges that recovery never scans.
"""

from __future__ import annotations

import functools
import struct

from codeq.kv.api import prefix_upper_bound

_BE8 = struct.Struct(">Q")

LIVE = b"L/"  # L/<id> -> task record (PENDING or IN_PROGRESS)
FINISHED = b"F/"  # F/<id> -> task record (COMPLETED, FAILED, dead-lettered)
RESULT = b"R/"  # R/<id> -> result record
IDEMPOTENCY = b"I/"  # I/<tenant>\0<key> -> (task id, expires_ms)
RETENTION = b"E/"  # E/<be8 expires_ms><id> -> empty; one entry per finished task
IDEMPOTENCY_EXPIRY = b"X/"  # X/<be8 expires_ms><tenant>\0<key> -> empty
DLQ = b"D/"  # D/<tenant>\0<command key>\0<id> -> empty
DLQ_COUNT = b"C/"  # C/<tenant>\0<command key> -> be8 count
OUTBOX = b"W/"  # W/<delivery id> -> outbox entry (a result callback not yet delivered)
SUBSCRIPTION = b"S/"  # S/<id> -> subscription record (shard 0 only)
SUBSCRIPTION_EXPIRY = b"Y/"  # Y/<be8 expires_ms><id> -> empty
TOPIC = b"T/"  # T/<tenant>\0<topic name> -> topic record (shard 0 only)
SCHEDULE = b"P/"  # P/<tenant>\0<schedule name> -> schedule record (shard 0 only)
# Q/<tenant>\0<command key>\0<state>\0<be8 finished_ms><id> -> empty: finished tasks by state
# and finish time, written with the terminal transition and deleted with the finished record.
FINISHED_BY_STATE = b"Q/"
META = b"M/"

LIVE_END = prefix_upper_bound(LIVE)
RETENTION_END = prefix_upper_bound(RETENTION)
IDEMPOTENCY_EXPIRY_END = prefix_upper_bound(IDEMPOTENCY_EXPIRY)
DLQ_COUNT_END = prefix_upper_bound(DLQ_COUNT)
OUTBOX_END = prefix_upper_bound(OUTBOX)
SUBSCRIPTION_END = prefix_upper_bound(SUBSCRIPTION)
SCHEDULE_END = prefix_upper_bound(SCHEDULE)
FORMAT = META + b"format"
FORMAT_VERSION = b"1"


def be8(n: int) -> bytes:
    return _BE8.pack(max(n, 0))


def read_be8(raw: bytes, offset: int = 0) -> int:
    value: int = _BE8.unpack_from(raw, offset)[0]
    return value


def live(task_id: str) -> bytes:
    return LIVE + task_id.encode()


def finished(task_id: str) -> bytes:
    return FINISHED + task_id.encode()


def result(task_id: str) -> bytes:
    return RESULT + task_id.encode()


def idempotency(tenant: str, key: str) -> bytes:
    return IDEMPOTENCY + tenant.encode() + b"\0" + key.encode()


def split_idempotency(key: bytes) -> tuple[str, str]:
    """(tenant, idempotency key) of an `I/` key."""
    tenant, _, idem = key[len(IDEMPOTENCY) :].partition(b"\0")
    return tenant.decode(), idem.decode()


def idempotency_expiry(expires_ms: int, tenant: str, key: str) -> bytes:
    return IDEMPOTENCY_EXPIRY + be8(expires_ms) + tenant.encode() + b"\0" + key.encode()


def split_idempotency_expiry(key: bytes) -> tuple[int, str, str]:
    expires_ms = read_be8(key, len(IDEMPOTENCY_EXPIRY))
    tenant, _, idem = key[len(IDEMPOTENCY_EXPIRY) + 8 :].partition(b"\0")
    return expires_ms, tenant.decode(), idem.decode()


def retention(expires_ms: int, task_id: str) -> bytes:
    return RETENTION + be8(expires_ms) + task_id.encode()


def split_retention(key: bytes) -> tuple[int, str]:
    return read_be8(key, len(RETENTION)), key[len(RETENTION) + 8 :].decode()


def dlq_prefix(tenant: str, command_key: str) -> bytes:
    return DLQ + tenant.encode() + b"\0" + command_key.encode() + b"\0"


def dlq(tenant: str, command_key: str, task_id: str) -> bytes:
    return dlq_prefix(tenant, command_key) + task_id.encode()


def dlq_count(tenant: str, command_key: str) -> bytes:
    return DLQ_COUNT + tenant.encode() + b"\0" + command_key.encode()


def split_dlq_count(key: bytes) -> tuple[str, str]:
    tenant, _, command_key = key[len(DLQ_COUNT) :].partition(b"\0")
    return tenant.decode(), command_key.decode()


def dlq_page_bounds(tenant: str, command_key: str, after_id: str) -> tuple[bytes, bytes]:
    """[lower, upper) of the DLQ entries of (tenant, command) whose id sorts after `after_id`."""
    prefix = dlq_prefix(tenant, command_key)
    lower = prefix + after_id.encode() + b"\0" if after_id else prefix
    return lower, prefix_upper_bound(prefix)


def split_dlq(key: bytes) -> str:
    """The task id of a DLQ entry."""
    return key.rsplit(b"\0", 1)[1].decode()


def outbox(delivery_id: str) -> bytes:
    return OUTBOX + delivery_id.encode()


def subscription(sub_id: str) -> bytes:
    return SUBSCRIPTION + sub_id.encode()


def subscription_expiry(expires_ms: int, sub_id: str) -> bytes:
    return SUBSCRIPTION_EXPIRY + be8(expires_ms) + sub_id.encode()


def split_subscription_expiry(key: bytes) -> tuple[int, str]:
    return read_be8(key, len(SUBSCRIPTION_EXPIRY)), key[len(SUBSCRIPTION_EXPIRY) + 8 :].decode()


def topic(tenant: str, name: str) -> bytes:
    return TOPIC + tenant.encode() + b"\0" + name.encode()


def schedule_prefix(tenant: str) -> bytes:
    return SCHEDULE + tenant.encode() + b"\0"


def schedule(tenant: str, name: str) -> bytes:
    return schedule_prefix(tenant) + name.encode()


@functools.lru_cache(maxsize=4096)  # built on every finish; few (tenant, command, state) exist
def finished_by_state_prefix(tenant: str, command_key: str, state: str) -> bytes:
    return FINISHED_BY_STATE + tenant.encode() + b"\0" + command_key.encode() + b"\0" + state.encode() + b"\0"


def finished_by_state(tenant: str, command_key: str, state: str, finished_ms: int, task_id: str) -> bytes:
    return finished_by_state_prefix(tenant, command_key, state) + be8(finished_ms) + task_id.encode()


def finished_by_state_range(
    tenant: str, command_key: str, state: str, after: tuple[int, str] | None, newest: bool
) -> tuple[bytes, bytes]:
    """[lower, upper) of the entries of (tenant, command, state) past the entry `after`
    (finished_ms, id): those before it when reading newest first, after it otherwise."""
    prefix = finished_by_state_prefix(tenant, command_key, state)
    lower, upper = prefix, prefix_upper_bound(prefix)
    if after is not None:
        cursor = prefix + be8(after[0]) + after[1].encode()
        if newest:
            upper = cursor
        else:
            lower = cursor + b"\0"  # the smallest key after the cursor's
    return lower, upper


def split_finished_by_state(key: bytes, prefix_length: int) -> tuple[int, str]:
    """(finished_ms, task id) of an entry whose prefix is `prefix_length` bytes long."""
    return read_be8(key, prefix_length), key[prefix_length + 8 :].decode()


def finished_by_state_task_id(key: bytes) -> str:
    """The task id of a `Q/` entry: after its tenant, command and state (names hold no NUL)
    and the 8-byte finish time."""
    start = len(FINISHED_BY_STATE)
    for _ in range(3):
        start = key.index(b"\0", start) + 1
    return key[start + 8 :].decode()
