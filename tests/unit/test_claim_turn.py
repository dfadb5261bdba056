"""Where a claim starts with a process per shard (`Node.claim_order`, ADR 0009): its own
shard first, and another shard first now and then only where that shard's own process
takes nothing from the queues asked for (its ready feed says so)."""

from __future__ import annotations

from typing import Any, cast

from codeq.cluster.remote import PeerLink, RemoteShard
from codeq.service.node import REMOTE_FIRST_EVERY, Node, Shard
from codeq.service.waiters import TAKERS_WINDOW_MS, Waiters

NOW = 1_000_000


def node_with_remote() -> tuple[Node, RemoteShard]:
    node = Node(Waiters())
    local = Shard(0, cast(Any, None), cast(Any, None))  # claim_order reads neither
    remote = RemoteShard(1, PeerLink("unix:/nonexistent", lambda *ready: None))
    node.shards = [local, remote]
    return node, remote


def starts_elsewhere(node: Node, commands: list[str] | None, now_ms: int) -> int:
    """How many of 2 × REMOTE_FIRST_EVERY claims start at another shard."""
    orders = [node.claim_order("acme", commands, now_ms) for _ in range(2 * REMOTE_FIRST_EVERY)]
    return sum(1 for order in orders if not Node.is_local(order[0]))


def test_a_shard_the_feed_said_nothing_of_gets_one_claim_in_sixteen_first() -> None:
    node, _ = node_with_remote()
    assert starts_elsewhere(node, ["render"], NOW) == 2


def test_no_claim_starts_at_a_shard_whose_own_claims_take_the_queue() -> None:
    node, remote = node_with_remote()
    remote.heard_ready("acme", "render", takers=True, now_ms=NOW)
    assert starts_elsewhere(node, ["render"], NOW + TAKERS_WINDOW_MS) == 0
    assert starts_elsewhere(node, ["email"], NOW) == 2  # a queue the feed did not speak of


def test_what_the_feed_said_goes_stale_so_a_shard_left_without_workers_is_still_drained() -> None:
    node, remote = node_with_remote()
    remote.heard_ready("acme", "render", takers=True, now_ms=NOW)
    assert starts_elsewhere(node, ["render"], NOW + TAKERS_WINDOW_MS + 1) == 2


def test_a_queue_the_feed_says_nobody_takes_gets_claims_started_there_again() -> None:
    node, remote = node_with_remote()
    remote.heard_ready("acme", "render", takers=True, now_ms=NOW)
    remote.heard_ready("acme", "render", takers=False, now_ms=NOW + 1)
    assert starts_elsewhere(node, ["render"], NOW + 1) == 2


def test_a_claim_for_any_queue_starts_there_unless_every_queue_heard_of_is_taken() -> None:
    node, remote = node_with_remote()
    remote.heard_ready("acme", "render", takers=True, now_ms=NOW)
    assert starts_elsewhere(node, None, NOW) == 0
    remote.heard_ready("acme", "email", takers=False, now_ms=NOW)
    assert starts_elsewhere(node, None, NOW) == 2
    assert starts_elsewhere(node, ["render"], NOW) == 0


def test_a_claim_here_makes_this_process_a_taker_of_its_queues() -> None:
    node, _ = node_with_remote()
    node.claim_order("acme", ["render"], NOW)
    assert node.waiters.has_takers("acme", "render", NOW)
    assert not node.waiters.has_takers("acme", "email", NOW)
