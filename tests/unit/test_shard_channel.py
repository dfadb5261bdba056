"""Two shard processes' halves in one event loop, linked over real Unix sockets: forwarded
commands, reads, errors, the ready feed and a lost peer (ADR 0009)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codeq.auth.principal import WORKER_SCOPES, Principal
from codeq.cluster import codec
from codeq.cluster.metrics_merge import merge_pages
from codeq.cluster.remote import PeerLink, RemoteShard
from codeq.cluster.server import ShardServer
from codeq.core.clock import FakeClock
from codeq.core.errors import CodeqError, NotFound, OutcomeUnknown, Unavailable, WrongState
from codeq.core.model import Status
from codeq.engine import commands as c
from codeq.engine.engine import Engine
from codeq.engine.outcomes import BatchApplied, Created
from codeq.engine.shards import shard_of
from codeq.kv.commit import GroupCommitter
from codeq.kv.memory import MemoryKV
from codeq.replication.single import SingleNode
from codeq.service.node import REMOTE_FIRST_EVERY, Node, Shard, ShardHandle
from codeq.service.policy import Policy
from codeq.service.results import NewResult, ResultService
from codeq.service.tasks import NewTask, TaskService
from codeq.service.waiters import TAKERS_WINDOW_MS, Waiters

PRODUCER = Principal("producer", "acme", frozenset({"codeq:produce"}), (), is_admin=False, is_worker=False)
WORKER = Principal("worker-1", "acme", frozenset(WORKER_SCOPES), ("*",), is_admin=False, is_worker=True)


@dataclass
class Half:
    """One process's view: its own shard, a handle on the other's, and its services."""

    node: Node
    shard: Shard
    server: ShardServer
    committer: GroupCommitter
    tasks: TaskService
    results: ResultService
    remote: RemoteShard | None = None


def half(tmp_path: Path, number: int, clock: FakeClock) -> Half:
    node = Node(Waiters())
    committer = GroupCommitter(MemoryKV(), fsync=False, name=f"kv-test{number}")
    committer.start()
    engine = Engine(committer)
    shard = Shard(number, engine, SingleNode(engine.apply, committer, node.publisher(engine)))
    node.shards.append(shard)
    reads = {
        "find_task": shard.find_task,
        "find_result": shard.find_result,
        "queue_counts": shard.queue_counts,
    }
    server = ShardServer(f"unix:{tmp_path}/procs/shard{number}.sock", shard, reads)
    node.waiters.unclaimed = server.unclaimed
    server.takers = lambda tenant, key: node.waiters.has_takers(tenant, key, clock.now_ms())
    return Half(
        node,
        shard,
        server,
        committer,
        TaskService(node, clock, Policy()),
        ResultService(node, clock, Policy()),
    )


def link(this: Half, other: Half, clock: FakeClock) -> None:
    def on_ready(tenant: str, key: str, count: int, takers: bool) -> None:
        remote.heard_ready(tenant, key, takers, clock.now_ms())
        this.node.waiters.ready(tenant, key, count)

    remote = RemoteShard(other.shard.number, PeerLink(other.server.address, on_ready))
    remote.link.start()
    shards: list[ShardHandle] = [this.shard, remote]
    this.node.shards = sorted(shards, key=lambda s: s.number)
    this.remote = remote


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000)


@pytest.fixture
async def pair(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Half, Half]]:
    a, b = half(tmp_path, 0, clock), half(tmp_path, 1, clock)
    await a.server.start()
    await b.server.start()  # (a shard process starts it once it serves HTTP)
    link(a, b, clock)
    link(b, a, clock)
    for side in (a, b):
        assert side.remote is not None
        while not side.remote.link.connected:
            await asyncio.sleep(0.01)  # the background connect to a listening socket
    yield a, b
    for side in (a, b):
        assert side.remote is not None
        await side.remote.link.close()
    for side in (a, b):
        await side.server.close()
        await side.committer.close()


async def create(side: Half, command: str = "render") -> str:
    task, _ = await side.tasks.create(PRODUCER, NewTask(command=command, payload="{}"))
    return task.id


async def test_a_create_stays_on_the_shard_of_the_process_that_took_it(pair: tuple[Half, Half]) -> None:
    a, b = pair
    ids_a = [await create(a) for _ in range(20)]
    ids_b = [await create(b) for _ in range(20)]
    assert {shard_of(i, 2) for i in ids_a} == {0}
    assert {shard_of(i, 2) for i in ids_b} == {1}
    assert a.remote is not None and a.remote.link.forwarded == 0


async def test_a_claim_is_forwarded_when_the_own_shard_is_empty_and_its_task_finishes_there(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    task_id = await create(b)
    [claimed] = await a.tasks.claim(WORKER, ["render"])
    assert claimed.id == task_id and claimed.status is Status.IN_PROGRESS
    [record] = await a.results.submit_many(
        WORKER, [NewResult(task_id, "COMPLETED", '{"ok":1}', lease_token=claimed.lease_epoch)]
    )
    assert not isinstance(record, Exception) and record.status is Status.COMPLETED
    assert (await a.tasks.get(PRODUCER, task_id)).status is Status.COMPLETED  # read over the link
    found, result = await a.results.get(PRODUCER, task_id)
    assert found.id == task_id and result.result == '{"ok":1}'
    assert a.remote is not None and a.remote.link.forwarded == 2  # the claim and the batch
    assert a.remote.link.forwarded_by == {("claim", "local_short"): 1, ("batch_complete", "owner"): 1}
    assert a.remote.link.claimed_across == {"local_short": 1}


async def test_a_claim_prefers_the_own_shard(pair: tuple[Half, Half]) -> None:
    a, b = pair
    await create(b)
    own = await create(a)
    [claimed] = await a.tasks.claim(WORKER, ["render"])
    assert claimed.id == own
    assert a.remote is not None and a.remote.link.forwarded == 0


async def until_heard(this: Half, count: int) -> None:
    """Wait until `this` side has heard `count` feed messages of tenant acme (socket I/O)."""
    assert this.remote is not None
    while this.remote._heard.get("acme", 0) < count:
        await asyncio.sleep(0.01)


async def test_one_claim_in_sixteen_starts_at_a_shard_whose_own_process_takes_nothing(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    for _ in range(REMOTE_FIRST_EVERY):
        await create(a)
        await create(b)  # no claim of b's process takes these: its feed says so
    await until_heard(a, REMOTE_FIRST_EVERY)
    shards = [shard_of(t.id, 2) for _ in range(REMOTE_FIRST_EVERY) for t in await a.tasks.claim(WORKER, None)]
    assert shards.count(1) == 1 and shards.count(0) == REMOTE_FIRST_EVERY - 1
    assert a.remote is not None and a.remote.link.forwarded_by == {("claim", "remote_first"): 1}


async def test_no_claim_starts_at_a_shard_whose_own_process_takes_its_tasks(
    pair: tuple[Half, Half], clock: FakeClock
) -> None:
    a, b = pair
    assert a.remote is not None
    assert await b.tasks.claim(WORKER, ["render"]) == []  # b's process takes from this queue
    for _ in range(REMOTE_FIRST_EVERY):
        await create(a)
        await create(b)
    await until_heard(a, REMOTE_FIRST_EVERY)
    for _ in range(REMOTE_FIRST_EVERY):
        [claimed] = await a.tasks.claim(WORKER, ["render"])
        assert shard_of(claimed.id, 2) == 0
    assert a.remote.link.forwarded == 0
    # Once b's claims have not asked for a while, its feed says nobody there takes them.
    clock.advance(ms=TAKERS_WINDOW_MS + 1)
    await create(b)
    await until_heard(a, REMOTE_FIRST_EVERY + 1)
    now = clock.now_ms()
    assert a.remote.needs_takers("acme", ["render"], now) and a.remote.needs_takers("acme", None, now)


async def test_a_long_poll_here_is_answered_by_a_task_made_ready_on_the_other_shard(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    waiting = asyncio.ensure_future(a.tasks.claim(WORKER, ["render"], wait_seconds=30))
    while len(a.node.waiters) == 0:
        await asyncio.sleep(0)  # until the claim found nothing and waits
    task_id = await create(b)
    [claimed] = await asyncio.wait_for(waiting, 10)
    assert claimed.id == task_id


async def test_a_task_a_claim_waits_for_here_is_not_offered_to_the_other_process(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    at_b = asyncio.ensure_future(b.tasks.claim(WORKER, ["render"], wait_seconds=30))
    at_a = asyncio.ensure_future(a.tasks.claim(WORKER, ["render"], wait_seconds=30))
    while len(a.node.waiters) == 0 or len(b.node.waiters) == 0:
        await asyncio.sleep(0)  # until both claims wait
    forwarded = a.remote.link.forwarded  # a's claim asked b once before it waited
    first = await create(b)
    assert [t.id for t in await asyncio.wait_for(at_b, 10)] == [first]
    second = await create(b)  # no claim waits on b now: offered to a, which claims it there
    assert [t.id for t in await asyncio.wait_for(at_a, 10)] == [second]
    # The feed is ordered: had the first been offered, a would have claimed there twice.
    assert a.remote.link.forwarded == forwarded + 1


async def test_a_batch_claim_waiting_here_takes_a_whole_batch_so_none_is_offered_elsewhere(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    at_b = asyncio.ensure_future(b.tasks.claim(WORKER, ["render"], wait_seconds=30, count=10))
    at_a = asyncio.ensure_future(a.tasks.claim(WORKER, ["render"], wait_seconds=30, count=10))
    while len(a.node.waiters) == 0 or len(b.node.waiters) == 0:
        await asyncio.sleep(0)  # until both claims wait
    forwarded = a.remote.link.forwarded
    batch = await b.tasks.create_many(PRODUCER, [NewTask(command="render", payload="{}")] * 10)
    assert len(await asyncio.wait_for(at_b, 10)) == 10
    last = await create(b)  # no claim waits on b now: offered to a, which claims it there
    assert [t.id for t in await asyncio.wait_for(at_a, 10)] == [last]
    # The feed is ordered: had the batch been offered to a too, a would have claimed twice.
    assert a.remote.link.forwarded == forwarded + 1 and len(batch) == 10


async def test_a_claim_that_got_tasks_here_is_not_topped_up_in_another_process(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    own = await create(a)
    await create(b)
    assert [t.id for t in await a.tasks.claim(WORKER, ["render"], count=2)] == [own]
    assert a.remote.link.forwarded == 0


async def test_a_short_forwarded_claim_marks_the_queue_empty_until_the_feed_speaks(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    assert await a.tasks.claim(WORKER, ["render"]) == []
    assert not a.remote.may_have_ready("acme", ["render"], 0)
    assert await a.tasks.claim(WORKER, ["render"]) == []
    assert a.remote.link.forwarded == 1  # the second claim did not cross
    await create(b)
    while not a.remote.may_have_ready("acme", ["render"], 0):
        await asyncio.sleep(0.01)  # the ready feed arrives
    assert len(await a.tasks.claim(WORKER, ["render"])) == 1


async def test_results_for_the_other_shard_posted_together_cross_as_one_batch_each_with_its_answer(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    for _ in range(3):
        await create(b)
    claimed = await a.tasks.claim(WORKER, ["render"], count=3)
    assert len(claimed) == 3
    forwarded, calls = a.remote.link.forwarded, a.remote.link.calls
    first, second, third = claimed
    answers = await asyncio.gather(
        a.results.submit(WORKER, NewResult(first.id, "COMPLETED", '{"n":1}', lease_token=first.lease_epoch)),
        a.results.submit(
            WORKER, NewResult(second.id, "FAILED", error="boom", lease_token=second.lease_epoch)
        ),
        a.results.submit(WORKER, NewResult(third.id, "COMPLETED", "{}", lease_token=third.lease_epoch + 7)),
        return_exceptions=True,
    )
    assert a.remote.link.calls == calls + 1  # one message for the three
    assert a.remote.link.forwarded == forwarded + 3  # three commands, as they count in their own shard
    assert a.remote.link.forwarded_by[("complete", "owner")] == 3
    done, failed, refused = answers
    assert (
        not isinstance(done, BaseException) and done.status is Status.COMPLETED and done.result == '{"n":1}'
    )
    assert not isinstance(failed, BaseException) and failed.status is Status.FAILED
    assert isinstance(refused, CodeqError)  # a stale lease token: only its own post is refused
    assert (await a.tasks.get(PRODUCER, third.id)).status is Status.IN_PROGRESS


async def test_refusals_cross_with_their_class_and_text(pair: tuple[Half, Half]) -> None:
    a, b = pair
    task_id = await create(b)
    with pytest.raises(WrongState) as refused:
        await a.tasks.heartbeat(WORKER, task_id, 30)  # it is not leased
    assert type(refused.value) is WrongState and str(refused.value) == "not-in-progress"
    missing = next(i for i in (str(n) * 8 for n in range(100)) if shard_of(i, 2) == 1)
    with pytest.raises(NotFound):
        await a.tasks.get(PRODUCER, missing)


async def test_queue_stats_add_up_every_shard(pair: tuple[Half, Half]) -> None:
    a, b = pair
    await create(a)
    await create(b)
    await create(b)
    assert await a.shard.queue_counts("acme", "render") == (1, 0, 0, 0)
    assert a.remote is not None
    assert await a.remote.queue_counts("acme", "render") == (2, 0, 0, 0)


async def test_a_peer_that_goes_away_fails_what_was_in_flight_and_refuses_the_rest(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    await b.server.close()
    while not a.remote.link.lost:
        await asyncio.sleep(0.01)  # the close reaches a's end of the socket
    assert not a.remote.is_leader
    with pytest.raises(Unavailable):
        await a.remote.find_task("x", "acme")


async def test_a_claim_keeps_what_it_claimed_here_when_the_other_process_is_gone(
    pair: tuple[Half, Half],
) -> None:
    a, b = pair
    assert a.remote is not None
    own = await create(a)
    await b.server.close()
    while not a.remote.link.lost:
        await asyncio.sleep(0.01)  # the close reaches a's end of the socket
    assert [t.id for t in await a.tasks.claim(WORKER, ["render"], count=2)] == [own]
    with pytest.raises(Unavailable):  # nothing here: the refusal says why
        await a.tasks.claim(WORKER, ["render"])


async def test_an_answer_lost_with_the_peer_is_outcome_unknown(pair: tuple[Half, Half]) -> None:
    a, _ = pair
    assert a.remote is not None and a.remote.link._channel is not None
    pending = a.remote.link.call(1, b"not a command", "shard 1")
    a.remote.link._channel.close()  # before the frame goes out
    with pytest.raises(OutcomeUnknown):
        await pending


async def drop_link(this: Half, other: Half) -> None:
    """Drop `this` side's connection to `other` (which still listens) and wait until it is seen."""
    assert this.remote is not None and this.remote.link._channel is not None
    channel = this.remote.link._channel
    for served in list(other.server._channels):
        served.close()
    while not channel.closed:
        await asyncio.sleep(0.01)  # the close reaches this end


async def test_a_link_that_drops_connects_again_and_forwards_as_before(pair: tuple[Half, Half]) -> None:
    a, b = pair
    assert a.remote is not None
    task_id = await create(b)
    await drop_link(a, b)
    for _ in range(500):  # bounded: a link that is never connected again fails here
        with contextlib.suppress(Unavailable):
            assert (await a.tasks.get(PRODUCER, task_id)).id == task_id
            break
        await asyncio.sleep(0.01)  # the link's own backoff, in real time
    else:
        raise AssertionError("the link was not connected again")
    assert a.remote.link.connected and not a.remote.link.lost
    [claimed] = await a.tasks.claim(WORKER, ["render"])
    assert claimed.id == task_id


async def test_a_long_poll_hears_of_tasks_made_ready_while_the_link_was_down(pair: tuple[Half, Half]) -> None:
    a, b = pair
    assert a.remote is not None
    assert await a.tasks.claim(WORKER, ["render"]) == []  # marks b's queue empty here
    waiting = asyncio.ensure_future(a.tasks.claim(WORKER, ["render"], wait_seconds=30))
    while len(a.node.waiters) == 0:
        await asyncio.sleep(0)  # until the claim waits
    assert a.remote.link._channel is not None
    channel = a.remote.link._channel
    await b.server.close()  # b stops listening for a while
    while not channel.closed:
        await asyncio.sleep(0.01)  # the close reaches a's end
    task_id = await create(b)  # made ready while no peer is linked to b: nobody is told
    await b.server.start()
    [claimed] = await asyncio.wait_for(waiting, 10)  # b tells a once a links again
    assert claimed.id == task_id


def test_a_batch_outcome_crosses_with_its_errors_in_place() -> None:
    from codeq.core.model import Task

    created = Created(Task("t1", "acme", "render", "{}"), replay=True)
    outcome = BatchApplied([created, NotFound("task not found")])
    decoded = codec.decode_outcome(c.Batch, codec.encode_outcome(outcome))
    assert isinstance(decoded, BatchApplied)
    assert decoded.items[0] == created
    error = decoded.items[1]
    assert (
        isinstance(error, NotFound) and error.message == "task not found" and str(error) == "task not found"
    )


def test_merged_metrics_name_each_family_once_and_label_every_sample() -> None:
    head = b"# HELP up Up.\n# TYPE up gauge\n"
    counter = b"# HELP x_total X.\n# TYPE x_total counter\n"
    page0 = head + b"up 1.0\n" + counter + b'x_total{a="b c"} 2.0\n'
    page1 = head + b"up 0.0\n" + counter + b'x_total{a="d"} 3.0\n'
    merged = merge_pages([(0, page0), (1, page1)]).decode().splitlines()
    assert merged == [
        "# HELP up Up.",
        "# TYPE up gauge",
        'up{shard_process="0"} 1.0',
        'up{shard_process="1"} 0.0',
        "# HELP x_total X.",
        "# TYPE x_total counter",
        'x_total{shard_process="0",a="b c"} 2.0',
        'x_total{shard_process="1",a="d"} 3.0',
    ]


async def test_a_shard_process_is_not_ready_while_a_peer_is_unlinked_or_gone(tmp_path: Path) -> None:
    from codeq.app.shard_process import ShardProcess
    from codeq.config import Settings, StoreSettings
    from codeq.observability.metrics import Metrics

    process = ShardProcess(Settings(store=StoreSettings(path=str(tmp_path))), Node(Waiters()), 0, Metrics())
    link = PeerLink(f"unix:{tmp_path}/nobody.sock", lambda tenant, key, count, takers: None)
    process.remotes[1] = RemoteShard(1, link)
    assert process.ready() == (False, "waiting for the process of shard 1")
    link.lost = True
    assert process.ready() == (False, "lost the link to the process of shard 1; connecting again")


class CapturingPoster:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.bodies.append(body)
        return 200

    async def aclose(self) -> None:
        return None


async def test_a_queue_ready_notification_counts_the_ready_tasks_of_every_shard_process(
    pair: tuple[Half, Half],
) -> None:
    import json

    from codeq.engine.subscriptions import Subscription
    from codeq.service.callback_hosts import CallbackHosts
    from codeq.service.notifier import Notifier

    a, b = pair
    clock = FakeClock(1_000_000)
    sub = Subscription(
        "sub-1", "acme", "worker-1", "http://127.0.0.1:9/hook", ["render"], "fanout", "", 0, 0, 2**62
    )
    a.shard.engine.subscriptions.put(sub)  # subscriptions live on shard 0, a's
    poster = CapturingPoster()
    notifier = Notifier(a.node, clock, CallbackHosts(allow=["127.0.0.1"]), poster)
    await create(a)
    await create(b)
    await create(b)
    notifier.ready("acme", "render")
    await notifier.tick()
    await notifier.drain()
    [body] = poster.bodies
    assert json.loads(body)["queueDepth"] == 3  # one here, two in the other process


async def test_the_feed_restates_who_takes_a_queue_so_peers_learn_when_takers_come_or_go(
    pair: tuple[Half, Half], clock: FakeClock
) -> None:
    a, b = pair
    assert a.remote is not None
    assert await b.tasks.claim(WORKER, ["render"]) == []  # b's process takes from this queue
    await create(b)
    await until_heard(a, 1)
    assert not a.remote.needs_takers("acme", ["render"], clock.now_ms())
    clock.advance(ms=TAKERS_WINDOW_MS // 2)
    assert await b.tasks.claim(WORKER, ["email"]) == []
    assert [t.id for t in await b.tasks.claim(WORKER, ["render"])]  # b's claims still take it
    await create(b)  # ready, with nobody waiting for it here or there
    await until_heard(a, 2)
    clock.advance(ms=TAKERS_WINDOW_MS // 2 + 1)
    waiting = asyncio.ensure_future(a.tasks.claim(WORKER, ["email"], wait_seconds=30))
    while len(a.node.waiters) == 0:
        await asyncio.sleep(0)  # until a's claim waits
    await b.server.announce()  # b's claims asked within the window: it restates that they take
    await until_heard(a, 3)
    assert not a.remote.needs_takers("acme", ["render"], clock.now_ms())
    assert len(a.node.waiters) == 1  # a restatement wakes no claim
    clock.advance(ms=TAKERS_WINDOW_MS + 1)  # b's claims stopped asking; nothing new is ready
    await b.server.announce()
    await until_heard(a, 4)
    assert a.remote.needs_takers("acme", ["render"], clock.now_ms())
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
