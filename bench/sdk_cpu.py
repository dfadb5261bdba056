#!/usr/bin/env python3
"""The SDK's own CPU time per task, with no server and no sockets: an `AsyncWorker` (claim →
async handler → batched result) and an `AsyncProducer` (`create_many`) over in-memory gRPC
streams. Every event is still encoded and decoded as on the wire; the in-memory peer answers
a Ready with a prepared TaskBatch (decoded afresh each time) and acknowledges every create and
result, so its own (small) cost is part of the figure. Less sensitive to a shared machine's
load than `codeq bench`, and the same for every tree, so trees compare:

  PYTHONPATH=/tmp/old/src .venv/bin/python bench/sdk_cpu.py [--tasks 100000] [--batch 100]
  .venv/bin/python bench/sdk_cpu.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from codeq.client import AsyncProducer, AsyncWorker, Job, TaskSpec
from codeq.client._grpc import GrpcTransport
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb


class MemoryCall:
    """One stream RPC answered in memory by `answer`, with the wire's encoding both ways."""

    def __init__(self, request: type[Message], answer: Callable[[Any], Iterable[Message]]) -> None:
        self._request, self._answer = request, answer
        self._replies: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reply_type: type[Message] = wpb.ServerEvent if request is wpb.WorkerEvent else ppb.ServerEvent

    async def write(self, event: Message | bytes) -> None:
        data = event if isinstance(event, bytes) else event.SerializeToString()
        for reply in self._answer(self._request.FromString(data)):
            self._replies.put_nowait(reply.SerializeToString())

    async def read(self) -> Message | None:
        data = await self._replies.get()
        return None if data is None else self._reply_type.FromString(data)

    async def done_writing(self) -> None:
        self._replies.put_nowait(None)

    def cancel(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class MemoryServer:
    """Answers like codeq would, as cheaply as it can."""

    def __init__(self) -> None:
        self._batches: dict[int, wpb.ServerEvent] = {}
        self._ids = itertools.count()

    def worker(self, event: Any) -> Iterable[Message]:
        kind = event.WhichOneof("event")
        if kind == "hello":
            yield wpb.ServerEvent(hello_ack=wpb.HelloAck(worker_id="bench"))
        elif kind == "ready":
            yield self._delivery(event.ready.count)
        elif kind == "result_batch":
            acks = [wpb.ResultAck(task_id=r.task_id, ok=True) for r in event.result_batch.results]
            yield wpb.ServerEvent(result_ack_batch=wpb.ResultAckBatch(acks=acks))
        elif kind == "abandon":  # the tasks delivered beyond what the stopped worker took
            yield wpb.ServerEvent(abandon_ack=wpb.AbandonAck(task_id=event.abandon.task_id, ok=True))

    def producer(self, event: Any) -> Iterable[Message]:
        if event.WhichOneof("event") == "hello":
            yield ppb.ServerEvent(hello_ack=ppb.HelloAck(tenant_id="bench"))
            return
        acks = [
            ppb.CreateAck(seq=c.seq, ok=True, task_id=f"t{next(self._ids)}") for c in event.create_batch.tasks
        ]
        yield ppb.ServerEvent(create_ack_batch=ppb.CreateAckBatch(acks=acks))

    def _delivery(self, count: int) -> wpb.ServerEvent:
        """A batch of `count` tasks (ids unique within it; batches reuse them, as a cache)."""
        found = self._batches.get(count)
        if found is None:
            found = self._batches[count] = wpb.ServerEvent()
            stamp = Timestamp(seconds=int(time.time()))
            for n in range(count):
                task = found.task_batch.tasks.add(
                    id=f"{n:020d}-0123456789ab", command="bench", payload=b'{"p":"xxxx"}', max_attempts=5,
                    status="IN_PROGRESS", worker_id="bench", lease_until="2030-01-01T00:00:00Z",
                    attempts=1, tenant_id="bench", lease_token=7,
                )  # fmt: skip
                task.created_at.CopyFrom(stamp)
                task.updated_at.CopyFrom(stamp)
        return found


def transport(server: MemoryServer) -> GrpcTransport:
    streams = GrpcTransport("grpc://127.0.0.1:1", "bench")

    async def worker_call() -> MemoryCall:
        return MemoryCall(wpb.WorkerEvent, server.worker)

    async def producer_call() -> MemoryCall:
        return MemoryCall(ppb.ProducerEvent, server.producer)

    streams._worker._dial = worker_call  # the in-memory peer instead of a channel
    streams._producer._dial = producer_call
    return streams


async def worker_us_per_task(tasks: int, batch: int) -> float:
    done = 0
    streams = transport(MemoryServer())
    worker = AsyncWorker(
        "grpc://127.0.0.1:1", "bench", concurrency=4 * batch, batch_size=batch, lease_seconds=300,
        transport=streams,
    )  # fmt: skip

    def on_ack(job: Job, outcome: str) -> None:
        nonlocal done
        done += 1
        if done >= tasks:
            worker.stop()

    async def handle(job: Job) -> dict[str, bool]:
        return {"ok": True}

    worker.on_ack = on_ack
    worker.register("bench", handle)
    started = time.process_time()
    await worker.run(handle_signals=False)
    spent = time.process_time() - started
    await streams.aclose()  # a transport passed in is the caller's to close
    return spent / done * 1e6


async def producer_us_per_task(tasks: int, batch: int, producers: int = 32) -> float:
    made = 0
    spec = TaskSpec(command="bench", payload={"p": "xxxx"})
    async with AsyncProducer("grpc://127.0.0.1:1", "bench", transport=transport(MemoryServer())) as producer:

        async def produce() -> None:
            nonlocal made
            while made < tasks:
                created = await producer.create_many([spec] * batch)
                made += len(created)  # not `made += len(await ...)`: that reads `made` before the wait

        started = time.process_time()
        await asyncio.gather(*(produce() for _ in range(producers)))
        return (time.process_time() - started) / made * 1e6


async def measure(tasks: int, batch: int) -> dict[str, float]:
    await worker_us_per_task(tasks // 5, batch)  # warm up: imports, caches, the allocator
    await producer_us_per_task(tasks // 5, batch)
    return {
        "worker_us_per_task": round(await worker_us_per_task(tasks, batch), 2),
        "producer_us_per_task": round(await producer_us_per_task(tasks, batch), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(measure(args.tasks, args.batch))))
        return
    print(json.dumps(uvloop.run(measure(args.tasks, args.batch))))


if __name__ == "__main__":
    main()
