"""The SDK over the gRPC streams: round trips, errors, reconnects, leader hints and packaging."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from codeq.client import (
    Abandon,
    AsyncProducer,
    AsyncWorker,
    BadRequest,
    BatchItemError,
    CodeqError,
    ConnectionFailed,
    Fail,
    Job,
    Nack,
    NotFound,
    NotInProgress,
    NotOwner,
    PayloadTooLarge,
    Producer,
    Result,
    ResultNotReady,
    ResultSpec,
    Task,
    TaskSpec,
    Unauthorized,
    Worker,
)
from codeq.client._grpc import LEADER_METADATA, GrpcTransport
from codeq.client._http import HttpTransport
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.sdk.conftest import PRODUCER_TOKEN, WORKER_TOKEN
from tests.sdk.live import LiveServer, running

WORKER_METHOD = "/workerpb.WorkerStream/Stream"


def _producer(server: LiveServer) -> AsyncProducer:
    return AsyncProducer(server.producer_url, PRODUCER_TOKEN, http_url=server.url)


async def test_producer_creates_over_the_stream_and_reads_over_http(streams: LiveServer) -> None:
    async with _producer(streams) as producer:
        task = await producer.create("render", {"page": 1}, priority=5, max_attempts=3)
        assert task.status == "PENDING" and task.payload == {"page": 1} and task.tenant_id == "dev"
        stored = await producer.get(task.id)
        assert (stored.payload, stored.priority, stored.max_attempts) == ({"page": 1}, 5, 3)
        await producer.create("render", 2, run_at=datetime.now(UTC) + timedelta(hours=1))
        await producer.create("render", 3, delay_seconds=3600)
        first = await producer.create("render", 4, idempotency_key="job-4")
        again = await producer.create("render", 5, idempotency_key="job-4")
        assert again.id == first.id
        with pytest.raises(ResultNotReady):
            await producer.result(task.id)
        with pytest.raises(BadRequest) as bad:
            await producer.create("   ", 1)
        assert bad.value.status == 400
        with pytest.raises(PayloadTooLarge):
            await producer.create("render", "x" * 70_000)  # over the server's 64 KiB
        assert producer.base_url == streams.producer_url
    http = HttpTransport(streams.url, WORKER_TOKEN)
    claimed = await http.claim_many(["render"], 60, 0, 10)
    await http.aclose()
    assert {t.id for t in claimed} == {task.id, first.id}  # the postponed two are not due


async def test_create_many_over_the_stream_reports_items_alone(streams: LiveServer) -> None:
    specs: list[TaskSpec | dict[str, object]] = [TaskSpec(command="render", payload=i) for i in range(150)]
    specs[120] = {"command": " ", "payload": 120}
    specs[3] = TaskSpec(command="render", payload=3, delay_seconds=-1)
    async with _producer(streams) as producer:
        outcomes = await producer.create_many(specs)
        errors = {i: o for i, o in enumerate(outcomes) if not isinstance(o, Task)}
        assert set(errors) == {3, 120}
        assert isinstance(errors[120], BatchItemError) and errors[120].index == 120
        tasks = [o for o in outcomes if isinstance(o, Task)]
        assert len({t.id for t in tasks}) == 148
        assert (await producer.get(tasks[-1].id)).payload == 149


async def test_worker_round_trip_over_the_stream(streams: LiveServer) -> None:
    acked: list[tuple[object, str]] = []
    worker = AsyncWorker(
        streams.worker_url,
        WORKER_TOKEN,
        concurrency=2,
        on_ack=lambda job, how: acked.append((job.payload, how)),
    )
    calls: dict[str, int] = {"nack": 0, "abandon": 0}

    @worker.handler("render")
    async def render(job: Job) -> dict[str, object]:
        await job.heartbeat(120)  # over the stream too
        return {"pages": job.payload * 2}

    @worker.handler("again")
    def again(job: Job) -> Nack | Abandon | str:
        calls[job.payload] += 1
        if calls[job.payload] > 1:
            return "second time"
        return Nack(delay=0, reason="not yet") if job.payload == "nack" else Abandon()

    worker.register("fail", lambda job: Fail("bad input"))
    async with _producer(streams) as producer:
        rendered = await producer.create("render", 3)
        nacked = await producer.create("again", "nack")
        abandoned = await producer.create("again", "abandon")
        failing = await producer.create("fail", 1)
        async with running(worker):
            assert (await producer.result(rendered.id, wait=10)).result == {"pages": 6}
            assert (await producer.result(nacked.id, wait=10)).result == {"value": "second time"}
            assert (await producer.result(abandoned.id, wait=10)).result == {"value": "second time"}
            failed = await producer.result(failing.id, wait=10)
        assert failed.status == "FAILED" and failed.error == "bad input"
        assert (await producer.get(nacked.id)).attempts == 2  # a nack spends the attempt
        assert (await producer.get(abandoned.id)).attempts == 1  # an abandon gives it back
    stats = worker.stats
    assert (stats.completed, stats.failed, stats.nacked, stats.abandoned) == (3, 1, 1, 1)
    assert stats.acknowledged == 6 and stats.ack_errors == 0
    assert Counter(how for _, how in acked) == {"completed": 3, "failed": 1, "nacked": 1, "abandoned": 1}


class RivalWorker:
    """A worker stream driven by hand, as another instance of the same token (`dev-worker/rival`)."""

    def __init__(self, url: str) -> None:
        self._channel = grpc.aio.insecure_channel(url.removeprefix("grpc://"))
        stream = self._channel.stream_stream(
            WORKER_METHOD, request_serializer=_serialize, response_deserializer=wpb.ServerEvent.FromString
        )
        self._call = stream()

    async def ask(self, event: wpb.WorkerEvent) -> Any:
        await self._call.write(event)
        return await self._call.read()

    async def claim(self) -> str:
        hello = wpb.Hello(token=WORKER_TOKEN, worker_id="rival")
        assert (await self.ask(wpb.WorkerEvent(hello=hello))).WhichOneof("event") == "hello_ack"
        reply = await self.ask(wpb.WorkerEvent(ready=wpb.Ready(commands=["render"], wait_seconds=1)))
        return str(reply.task.task.id)

    async def close(self) -> None:
        self._call.cancel()
        await self._channel.close()


async def test_stream_errors_map_to_the_sdk_error_classes(streams: LiveServer) -> None:
    async with AsyncProducer(streams.url, PRODUCER_TOKEN) as producer:
        theirs = await producer.create("render", "theirs")
        rival = RivalWorker(streams.worker_url)
        assert await rival.claim() == theirs.id
        ours = await producer.create("render", "ours")
        transport = GrpcTransport(streams.worker_url, WORKER_TOKEN)
        try:
            await _refusals(transport, ours.id, theirs.id)
        finally:
            await transport.aclose()
            await rival.close()
        assert (await producer.result(ours.id)).result == {"done": True}


async def _refusals(transport: GrpcTransport, ours: str, theirs: str) -> None:
    claimed = await transport.claim(["render"], 60, 1)
    assert claimed is not None and claimed.id == ours and claimed.attempts == 1
    assert claimed.lease_until is not None and claimed.worker_id == "dev-worker"
    with pytest.raises(NotOwner) as not_owner:
        await transport.nack(theirs, None, "")
    assert not_owner.value.status == 403
    with pytest.raises(NotFound):
        await transport.heartbeat("00000000-0000-4000-8000-000000000000", 30)
    await transport.submit_result(ours, "COMPLETED", {"done": True}, "")
    with pytest.raises(NotInProgress):
        await transport.abandon(ours)
    outcomes = await transport.submit_results(
        [
            ResultSpec(task_id=ours, status="COMPLETED", result={}),
            ResultSpec(task_id=theirs, status="COMPLETED", result={}),
            ResultSpec(task_id="missing", status="FAILED", error="x"),
        ]
    )
    assert [type(o) for o in outcomes] == [NotInProgress, NotOwner, NotFound]
    with pytest.raises(CodeqError, match="http_url"):
        await transport.get_task(ours)


async def test_tasks_delivered_to_a_claim_given_up_are_handed_back_at_close(streams: LiveServer) -> None:
    transport = GrpcTransport(streams.worker_url, WORKER_TOKEN)
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFound):
        await transport.heartbeat(missing, 30)  # the stream is open
    claiming = asyncio.ensure_future(transport.claim_many(["spare"], 60, 10, 2))
    await asyncio.sleep(0)  # one loop turn: the claim's Ready is written first
    with pytest.raises(NotFound):
        await transport.heartbeat(missing, 30)  # answered after the server read the Ready
    claiming.cancel()
    async with AsyncProducer(streams.url, PRODUCER_TOKEN) as producer:
        created = await _created(producer.create_many([{"command": "spare", "payload": n} for n in range(2)]))
        # The waiting Ready claims them for a caller that is gone (or, if the close overtakes
        # it, never claims them): either way the close leaves them to other workers.
        await transport.aclose()
    # The server may release a claim the closed stream could not take a moment after the
    # close returns: another worker's long-poll claim is answered once they are back, with
    # no attempt counted for the lease that was given up.
    other = GrpcTransport(streams.worker_url, WORKER_TOKEN)
    try:
        reclaimed: list[Task] = []
        while len(reclaimed) < len(created):
            claimed = await other.claim_many(["spare"], 60, 5, len(created) - len(reclaimed))
            if not claimed:
                break
            reclaimed += claimed
    finally:
        await other.aclose()
    assert sorted(t.id for t in reclaimed) == sorted(t.id for t in created)
    assert [t.attempts for t in reclaimed] == [1, 1]


async def _created(outcomes: Awaitable[list[Task | CodeqError]]) -> list[Task]:
    tasks = [task for task in await outcomes if isinstance(task, Task)]
    assert tasks
    return tasks


async def test_a_token_the_streams_refuse_is_unauthorized(streams: LiveServer) -> None:
    async with AsyncProducer(streams.producer_url, "not-a-token") as stranger:
        with pytest.raises(Unauthorized) as denied:
            await stranger.create("render", 1)
    assert denied.value.status == 401
    worker = AsyncWorker(streams.worker_url, "not-a-token")
    worker.register("render", lambda job: None)
    with pytest.raises(Unauthorized):
        await worker.run(handle_signals=False)


async def test_blocking_producer_and_worker_over_grpc(streams: LiveServer) -> None:
    def use() -> tuple[list[object], int]:
        with Producer(streams.producer_url, PRODUCER_TOKEN, http_url=streams.url) as producer:
            created = producer.create_many([{"command": "square", "payload": n} for n in range(5)])
            worker = Worker(streams.worker_url, WORKER_TOKEN, concurrency=2, batch_size=4)
            worker.register("square", lambda job: job.payload * job.payload)
            worker.run(burst=True)
            results = [producer.result(t.id).result for t in created if isinstance(t, Task)]
            return results, worker.stats.acknowledged

    results, acknowledged = await asyncio.to_thread(use)
    assert results == [{"value": n * n} for n in range(5)] and acknowledged == 5


class WatchedGrpc(GrpcTransport):
    """The real stream transport, noting when a claim or a result found no stream to use."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.claim_failed = asyncio.Event()
        self.result_failed = asyncio.Event()

    async def claim(self, commands: Sequence[str], lease_seconds: int, wait_seconds: int) -> Task | None:
        try:
            return await super().claim(commands, lease_seconds, wait_seconds)
        except ConnectionFailed:
            self.claim_failed.set()
            raise

    async def submit_result(
        self, task_id: str, status: str, result: Any, error: str, lease_token: int = 0
    ) -> Result:
        try:
            return await super().submit_result(task_id, status, result, error, lease_token)
        except ConnectionFailed:
            self.result_failed.set()
            raise


async def test_the_worker_and_producer_reconnect_when_the_streams_restart(streams: LiveServer) -> None:
    producer_url, worker_url = streams.producer_url, streams.worker_url
    transport = WatchedGrpc(worker_url, WORKER_TOKEN)
    worker = AsyncWorker(
        worker_url, WORKER_TOKEN, concurrency=2, reconnect_max_seconds=0.2, transport=transport
    )
    started, gate = asyncio.Event(), asyncio.Event()

    @worker.handler("render")
    async def render(job: Job) -> object:
        if job.payload == "across":
            started.set()
            await gate.wait()
        return job.payload

    try:
        async with _producer(streams) as producer, running(worker):
            before = await producer.create("render", "before")
            assert (await producer.result(before.id, wait=10)).result == {"value": "before"}
            across = await producer.create("render", "across")
            await started.wait()
            await streams.stop_streams()  # every stream ends; HTTP and the store stay up
            await transport.claim_failed.wait()  # the idle slot keeps trying to claim
            gate.set()
            await transport.result_failed.wait()  # the finished handler's result is held back
            await streams.start_streams(producer_url, worker_url)  # the same ports
            assert (await producer.result(across.id, wait=10)).result == {"value": "across"}
            after = await producer.create("render", "after")  # a new producer stream
            assert (await producer.result(after.id, wait=10)).result == {"value": "after"}
    finally:
        await transport.aclose()
    assert worker.stats.completed == 3 and worker.stats.ack_errors == 0
    assert worker.stats.connection_errors >= 1


class NotLeader:
    """A stream server that ends every stream as not-leader, naming the leader's stream address."""

    def __init__(self, leader: str, *, in_metadata: bool) -> None:
        self.leader = leader
        self.in_metadata = in_metadata
        self.refused = 0
        self.server = grpc.aio.server()
        handlers = {"Stream": grpc.stream_stream_rpc_method_handler(self._refuse)}
        for service in ("producerpb.ProducerStream", "workerpb.WorkerStream"):
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        self.url = f"grpc://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    async def _refuse(self, requests: object, context: grpc.aio.ServicerContext) -> None:
        self.refused += 1
        if self.in_metadata:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not leader", ((LEADER_METADATA, self.leader),))
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"not leader (leader: {self.leader})")


@pytest.mark.parametrize("in_metadata", [True, False], ids=["metadata", "message"])
async def test_a_not_leader_stream_sends_the_client_to_the_leader(
    streams: LiveServer, in_metadata: bool
) -> None:
    follower = NotLeader(streams.producer_url, in_metadata=in_metadata)
    await follower.server.start()
    try:
        async with AsyncProducer(follower.url, PRODUCER_TOKEN, http_url=streams.url) as producer:
            task = await producer.create("render", "via the follower")  # retried at the leader
            again = await producer.create("render", "straight to the leader")
            assert (await producer.get(task.id)).payload == "via the follower"
            assert (await producer.get(again.id)).payload == "straight to the leader"
    finally:
        await follower.server.stop(None)
    assert follower.refused == 1


def test_grpc_urls_without_grpcio_say_what_to_install() -> None:
    script = textwrap.dedent(
        """
        import sys
        for name in ["grpc", "google.protobuf"]:
            sys.modules[name] = None
        from codeq.client import AsyncProducer
        try:
            AsyncProducer("grpc://127.0.0.1:9", "token")
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'codeq-queue[grpc]'" in done.stdout


def _serialize(event: wpb.WorkerEvent) -> bytes:
    return event.SerializeToString()
