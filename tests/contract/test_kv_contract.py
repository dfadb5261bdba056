"""One contract, two stores: the memory KV and RocksDB must behave the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codeq.kv.api import KV, prefix_upper_bound
from codeq.kv.memory import MemoryKV
from codeq.kv.rocks import RocksKV


@pytest.fixture(params=["memory", "rocks"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KV]:
    store: KV = MemoryKV() if request.param == "memory" else RocksKV(str(tmp_path / "db"))
    yield store
    store.close()


def test_get_of_a_missing_key_is_none(kv: KV) -> None:
    assert kv.get(b"nope") is None


def test_write_is_visible_and_deletes_remove(kv: KV) -> None:
    kv.write({b"a": b"1", b"b": b"2"}, sync=True)
    assert kv.get(b"a") == b"1" and kv.get(b"b") == b"2"
    kv.write({b"a": None, b"b": b"3"}, sync=False)
    assert kv.get(b"a") is None and kv.get(b"b") == b"3"


def test_later_ops_in_one_write_win(kv: KV) -> None:
    ops: dict[bytes, bytes | None] = {b"k": b"1"}
    ops[b"k"] = None
    kv.write(ops, sync=True)
    assert kv.get(b"k") is None


def test_empty_values_are_values(kv: KV) -> None:
    kv.write({b"idx": b""}, sync=True)
    assert kv.get(b"idx") == b""
    assert list(kv.scan(b"i", b"j")) == [(b"idx", b"")]


def test_scan_is_ordered_half_open_and_limited(kv: KV) -> None:
    kv.write({bytes([0x61, i]): bytes([i]) for i in (5, 1, 0xFF, 3, 0x2F)}, sync=True)
    kv.write({b"b": b"x", b"\x00": b"y"}, sync=True)
    keys = [k for k, _ in kv.scan(b"a", b"b")]
    assert keys == [b"a\x01", b"a\x03", b"a\x05", b"a\x2f", b"a\xff"]
    assert [k for k, _ in kv.scan(b"a\x03", b"a\x2f")] == [b"a\x03", b"a\x05"]
    assert [k for k, _ in kv.scan(b"a", b"b", limit=2)] == [b"a\x01", b"a\x03"]
    assert list(kv.scan(b"c", b"d")) == []


def test_prefix_upper_bound_covers_the_prefix() -> None:
    assert prefix_upper_bound(b"L/") == b"L0"
    assert prefix_upper_bound(b"a\xff") == b"b"


def test_rocks_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    store = RocksKV(path)
    store.write({b"k": b"v"}, sync=True)
    store.close()
    reopened = RocksKV(path)
    assert reopened.get(b"k") == b"v"
    reopened.close()


def test_rocks_checkpoint_is_an_openable_copy(tmp_path: Path) -> None:
    store = RocksKV(str(tmp_path / "db"))
    store.write({b"k": b"v"}, sync=True)
    store.checkpoint(str(tmp_path / "copy"))
    store.write({b"k": b"changed"}, sync=True)
    store.close()
    copy = RocksKV(str(tmp_path / "copy"))
    assert copy.get(b"k") == b"v"
    copy.close()


def test_memory_store_refuses_to_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        MemoryKV().checkpoint(str(tmp_path / "copy"))


def test_scan_reverse_is_ordered_half_open_and_limited(kv: KV) -> None:
    kv.write({bytes([0x61, i]): bytes([i]) for i in (5, 1, 0xFF, 3, 0x2F)}, sync=True)
    kv.write({b"b": b"x", b"\x00": b"y"}, sync=True)
    keys = [k for k, _ in kv.scan_reverse(b"a", b"b")]
    assert keys == [b"a\xff", b"a\x2f", b"a\x05", b"a\x03", b"a\x01"]
    assert [k for k, _ in kv.scan_reverse(b"a\x03", b"a\x2f")] == [b"a\x05", b"a\x03"]
    assert [k for k, _ in kv.scan_reverse(b"a", b"b", limit=2)] == [b"a\xff", b"a\x2f"]
    assert list(kv.scan_reverse(b"c", b"d")) == []
