"""Which queues this process's claims take from (`Waiters.has_takers`, ADR 0009)."""

from __future__ import annotations

from codeq.service.waiters import TAKERS_WINDOW_MS, Waiters


def test_a_queue_has_takers_for_a_while_after_a_claim_asked_for_it() -> None:
    waiters = Waiters()
    assert not waiters.has_takers("acme", "render", 5_000)
    waiters.note_claim("acme", ["render"], 5_000)
    assert waiters.has_takers("acme", "render", 5_000 + TAKERS_WINDOW_MS)
    assert not waiters.has_takers("acme", "render", 5_001 + TAKERS_WINDOW_MS)
    assert not waiters.has_takers("acme", "email", 5_000)  # another queue
    assert not waiters.has_takers("other", "render", 5_000)  # another tenant


def test_a_claim_for_any_queue_takes_from_every_queue_of_its_tenant() -> None:
    waiters = Waiters()
    waiters.note_claim("acme", None, 5_000)
    assert waiters.has_takers("acme", "render", 5_000) and waiters.has_takers("acme", "email", 5_000)
    assert not waiters.has_takers("other", "render", 5_000)


async def test_a_waiting_claim_is_a_taker_however_long_it_waits() -> None:
    waiters = Waiters()
    waiter = waiters.claim_waiter("acme", ["render"])
    assert waiters.has_takers("acme", "render", 10**9)
    waiters.discard_claim(waiter, "acme", ["render"])
    assert not waiters.has_takers("acme", "render", 10**9)
    waiters.claim_waiter("acme", None)
    assert waiters.has_takers("acme", "email", 10**9)


def test_queues_claimed_long_ago_are_forgotten_so_any_command_names_cost_bounded_memory() -> None:
    from codeq.service.waiters import TAKERS_REMEMBERED

    waiters = Waiters()
    for n in range(10 * TAKERS_REMEMBERED):  # a claim a millisecond, each for a new name
        waiters.note_claim("acme", [f"cmd-{n}"], n)
    remembered = len(waiters._claimed)
    assert remembered <= TAKERS_REMEMBERED + TAKERS_WINDOW_MS + 1
    last = 10 * TAKERS_REMEMBERED - 1
    assert waiters.has_takers("acme", f"cmd-{last}", last)  # what counts is kept
    assert waiters.has_takers("acme", f"cmd-{last - TAKERS_WINDOW_MS}", last)
