"""The shared stream table of a node's shard processes and the decision to send a stream elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeq.cluster.stream_table import FRESH_MS, REMEMBERED_PEERS, StreamBalance, StreamTable, create_table
from codeq.core.clock import FakeClock


@pytest.fixture
def path(tmp_path: Path) -> str:
    found = str(tmp_path / "procs" / "streams")
    create_table(found, 2)
    return found


def tables(path: str, clock: FakeClock, slots: int = 2) -> list[StreamTable]:
    """One table per process, as each process maps the same file."""
    return [StreamTable(path, slots, own, clock.now_ms) for own in range(slots)]


def test_a_count_is_visible_to_the_other_process_at_once(path: str) -> None:
    clock = FakeClock()
    zero, one = tables(path, clock)
    zero.beat()
    one.add("worker", 1)
    one.add("worker", 1)
    one.add("producer", 1)
    assert zero.view("worker") == [0, 2]
    assert zero.view("producer") == [0, 1]
    one.add("worker", -1)
    assert zero.view("worker") == [0, 1]
    assert one.view("worker") == [0, 1]


def test_a_slot_never_written_or_not_written_lately_is_no_view(path: str) -> None:
    clock = FakeClock()
    zero, one = tables(path, clock)
    zero.add("producer", 1)
    assert zero.view("producer") is None  # shard 1's process is not up yet
    one.beat()
    assert zero.view("producer") == [1, 0]
    clock.advance(ms=FRESH_MS + 1)
    assert zero.view("producer") is None  # stuck or gone
    one.beat()
    assert zero.view("producer") == [1, 0]
    one.close()
    assert zero.view("producer") is None  # stopped


def test_a_fresh_table_forgets_what_a_previous_run_left(path: str) -> None:
    clock = FakeClock()
    zero, one = tables(path, clock)
    zero.add("worker", 3)
    one.beat()
    create_table(path, 2)  # the supervisor of the next run
    again = StreamTable(path, 2, 1, clock.now_ms)
    assert again.view("worker") is None


def test_a_table_smaller_than_the_node_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="fewer than 3 slots"):
        StreamTable(path, 3, 0, FakeClock().now_ms)


def balances(path: str, clock: FakeClock) -> list[StreamBalance]:
    found = [StreamBalance(table) for table in tables(path, clock)]
    for balance in found:
        balance.table.beat()
    return found


def test_a_process_holding_more_than_the_least_loaded_refuses(path: str) -> None:
    zero, one = balances(path, FakeClock())
    assert zero.admit("producer", "ipv4:127.0.0.1:1001")  # 0 against 0: taken
    assert not zero.admit("producer", "ipv4:127.0.0.1:1002")  # taking it would leave 2 against 0
    assert zero.refused == {"producer": 1, "worker": 0}
    assert zero.admit("worker", "ipv4:127.0.0.1:1003")  # each kind is counted apart
    assert one.admit("producer", "ipv4:127.0.0.1:1004")
    assert zero.admit("producer", "ipv4:127.0.0.1:1005")  # 1 against 1
    assert one.admit("producer", "ipv4:127.0.0.1:1006")  # 1 against 2: the least loaded takes it
    assert (zero.table.counts["producer"], one.table.counts["producer"]) == (2, 2)


def test_a_stream_that_ends_is_no_longer_counted(path: str) -> None:
    zero, one = balances(path, FakeClock())
    assert zero.admit("worker", "ipv4:127.0.0.1:1001")
    assert not zero.admit("worker", "ipv4:127.0.0.1:1002")
    zero.release("worker")
    assert zero.admit("worker", "ipv4:127.0.0.1:1003")
    assert one.table.view("worker") == [1, 0]


def test_one_connection_is_refused_once_at_most(path: str) -> None:
    zero, _ = balances(path, FakeClock())
    assert zero.admit("producer", "ipv4:127.0.0.1:1001")
    assert not zero.admit("producer", "ipv4:127.0.0.1:1002")
    assert zero.admit("producer", "ipv4:127.0.0.1:1002")  # the client retried on that connection
    assert not zero.admit("producer", "ipv4:127.0.0.1:1003")
    assert zero.refused["producer"] == 2


def test_the_memory_of_refused_connections_is_bounded(path: str) -> None:
    zero, _ = balances(path, FakeClock())
    assert zero.admit("producer", "first")
    for n in range(REMEMBERED_PEERS + 1):
        assert not zero.admit("producer", f"peer {n}")
    assert not zero.admit("producer", "peer 0")  # forgotten, the oldest first
    assert zero.admit("producer", f"peer {REMEMBERED_PEERS}")


def test_nothing_is_refused_on_a_stale_view(path: str) -> None:
    clock = FakeClock()
    zero, one = balances(path, clock)
    assert zero.admit("worker", "a")
    clock.advance(ms=FRESH_MS + 1)
    zero.table.beat()  # only the own slot is fresh
    assert zero.admit("worker", "b") and zero.admit("worker", "c")
    assert zero.refused["worker"] == 0
    one.table.beat()
    assert not zero.admit("worker", "d")


def test_a_closed_table_counts_nothing_more(path: str) -> None:
    zero, one = balances(path, FakeClock())
    assert zero.admit("worker", "a")
    zero.table.close()
    zero.release("worker")  # a stream ending during the stop
    assert one.table.view("worker") is None
    assert zero.table.view("worker") is None
