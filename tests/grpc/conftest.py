"""An in-process codeq (memory store, fake clock) with both gRPC streams on 127.0.0.1:0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from codeq.app import App
from codeq.config import load_settings
from codeq.core.clock import FakeClock
from codeq.transport.grpc.server import StreamServers
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb

WORKER_SCOPES = [
    "codeq:claim",
    "codeq:heartbeat",
    "codeq:abandon",
    "codeq:nack",
    "codeq:result",
    "codeq:subscribe",
]
START_MS = FakeClock().now_ms()
EXPIRES_AT = START_MS // 1000 + 1  # the brief-* tokens lapse 1 s after the fake clock's start


def _static(token: str, subject: str, **claims: Any) -> dict[str, Any]:
    return {"type": "static", "config": {"token": token, "subject": subject, **claims}}


# Beside the dev tokens (tenant dev): another tenant, tokens that lapse, a narrow worker and a
# token whose tenant claim is invalid.
PRODUCER_AUTH = {
    "providers": [
        _static("globex-producer", "globex"),
        _static("brief-producer", "brief", raw={"tid": "dev"}, expiresAt=EXPIRES_AT),
        _static("bad-tenant-producer", "x", raw={"tid": "Not A Tenant"}),
        # Explicit scopes without codeq:produce: may create only the commands in its eventTypes.
        _static("render-producer", "render-producer", scopes=[], eventTypes=["render"], raw={"tid": "dev"}),
    ]
}
WORKER_AUTH = {
    "providers": [
        _static("globex-worker", "globex", scopes=WORKER_SCOPES, eventTypes=["*"]),
        _static(
            "brief-worker",
            "brief",
            scopes=WORKER_SCOPES,
            eventTypes=["*"],
            raw={"tid": "dev"},
            expiresAt=EXPIRES_AT,
        ),
        _static(
            "render-worker",
            "render-worker",
            scopes=["codeq:claim"],
            eventTypes=["render"],
            raw={"tid": "dev"},
        ),
        _static(
            "bad-tenant-worker", "x", scopes=WORKER_SCOPES, eventTypes=["*"], raw={"tid": "Not A Tenant"}
        ),
    ]
}


def make_settings(**overrides: Any) -> Any:
    env = {
        "PRODUCER_AUTH_PROVIDER": "multi",
        "PRODUCER_AUTH_CONFIG": json.dumps(PRODUCER_AUTH),
        "WORKER_AUTH_PROVIDER": "multi",
        "WORKER_AUTH_CONFIG": json.dumps(WORKER_AUTH),
        "BACKOFF_POLICY": "fixed",
        "BACKOFF_BASE_SECONDS": "5",
    }
    defaults = {
        "provider": "memory",
        "dev": True,
        "producer_stream_addr": "127.0.0.1:0",
        "worker_stream_addr": "127.0.0.1:0",
    }
    return load_settings(environ=env, overrides={**defaults, **overrides})


class Conn:
    """One raw stream: events go out as bytes (so tests can send anything) and come back parsed."""

    def __init__(self, channel: grpc.aio.Channel, method: str, reply: type[Message], metadata: Any) -> None:
        self._reply = reply
        self.call = channel.stream_stream(method)(metadata=metadata)

    async def send(self, event: Message | bytes) -> None:
        await self.call.write(event if isinstance(event, bytes) else event.SerializeToString())

    async def recv(self) -> Any:
        """The next server event; None when the stream ended (then see `status`)."""
        try:
            raw = await self.call.read()
        except grpc.aio.AioRpcError:
            return None
        return None if raw is grpc.aio.EOF else self._reply.FromString(raw)

    async def ask(self, event: Message | bytes) -> Any:
        await self.send(event)
        return await self.recv()

    async def status(self) -> tuple[grpc.StatusCode, str]:
        return await self.call.code(), await self.call.details()

    async def close(self) -> tuple[grpc.StatusCode, str]:
        await self.call.done_writing()
        while await self.recv() is not None:
            pass
        return await self.status()


class Streams:
    def __init__(
        self, app: App, clock: FakeClock, producer: grpc.aio.Channel, worker: grpc.aio.Channel
    ) -> None:
        self.app = app
        self.clock = clock
        self._producer = producer
        self._worker = worker

    def producer_conn(self, metadata: Sequence[tuple[str, str]] = ()) -> Conn:
        return Conn(self._producer, "/producerpb.ProducerStream/Stream", ppb.ServerEvent, tuple(metadata))

    def worker_conn(self, metadata: Sequence[tuple[str, str]] = ()) -> Conn:
        return Conn(self._worker, "/workerpb.WorkerStream/Stream", wpb.ServerEvent, tuple(metadata))

    async def producer(self, token: str = "dev-producer") -> Conn:
        conn = self.producer_conn()
        reply = await conn.ask(ppb.ProducerEvent(hello=ppb.Hello(token=token)))
        assert reply is not None and reply.WhichOneof("event") == "hello_ack", await conn.status()
        return conn

    async def worker(self, token: str = "dev-worker", worker_id: str = "") -> Conn:
        conn = self.worker_conn()
        reply = await conn.ask(wpb.WorkerEvent(hello=wpb.Hello(token=token, worker_id=worker_id)))
        assert reply is not None and reply.WhichOneof("event") == "hello_ack", await conn.status()
        return conn

    async def create(self, command: str = "render", payload: bytes = b'{"n": 1}', **fields: Any) -> str:
        conn = await self.producer(fields.pop("token", "dev-producer"))
        create = ppb.CreateTask(seq=1, command=command, payload=payload, **fields)
        ack = (await conn.ask(ppb.ProducerEvent(create=create))).create_ack
        assert ack.ok, ack.error_message
        await conn.close()
        return str(ack.task_id)

    async def claim(self, conn: Conn, **fields: Any) -> Any:
        """One task through a Ready that must deliver it."""
        reply = await conn.ask(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=1, **fields)))
        assert reply.WhichOneof("event") == "task", reply
        return reply.task.task


async def start_app(clock: FakeClock, **overrides: Any) -> App:
    app = App(make_settings(**overrides), clock=clock)
    await app.start()
    return app


def channels(servers: StreamServers) -> tuple[grpc.aio.Channel, grpc.aio.Channel]:
    assert servers.producer is not None and servers.worker is not None
    producer = grpc.aio.insecure_channel(f"127.0.0.1:{servers.producer.port}")
    worker = grpc.aio.insecure_channel(f"127.0.0.1:{servers.worker.port}")
    return producer, worker


@pytest.fixture
async def streams() -> AsyncIterator[Streams]:
    clock = FakeClock()
    app = await start_app(clock, shutdown_grace_seconds=2)
    producer, worker = channels(app.streams)
    try:
        yield Streams(app, clock, producer, worker)
    finally:
        await producer.close()
        await worker.close()
        await app.stop()
