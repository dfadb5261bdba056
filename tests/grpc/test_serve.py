"""`codeq serve` with the streams: flags, the --dev defaults, announcing, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import grpc
import pytest

from codeq.cli import serve
from codeq.wire.pb import producerpb_pb2 as ppb
from codeq.wire.pb import workerpb_pb2 as wpb
from tests.grpc.conftest import Conn, make_settings
from tests.support.server import ServerProcess, free_port


@pytest.mark.process
async def test_serve_runs_both_streams_and_ends_them_on_sigterm(tmp_path: Path) -> None:
    producer_port, worker_port = free_port(), free_port()
    args = ["--producer-stream-addr", f"127.0.0.1:{producer_port}"]
    args += ["--worker-stream-addr", f"127.0.0.1:{worker_port}"]
    server = ServerProcess(tmp_path / "data", args=args)
    server.start()
    try:
        log = server.log.read_text()
        assert f"producer stream (gRPC) on 127.0.0.1:{producer_port}" in log
        assert f"worker stream (gRPC) on 127.0.0.1:{worker_port}" in log
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{producer_port}") as producer_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{worker_port}") as worker_channel,
        ):
            producer = Conn(producer_channel, "/producerpb.ProducerStream/Stream", ppb.ServerEvent, ())
            assert (await producer.ask(ppb.ProducerEvent(hello=ppb.Hello(token="dev-producer")))).hello_ack
            worker = Conn(worker_channel, "/workerpb.WorkerStream/Stream", wpb.ServerEvent, ())
            assert (await worker.ask(wpb.WorkerEvent(hello=wpb.Hello(token="dev-worker")))).hello_ack
            await worker.send(wpb.WorkerEvent(ready=wpb.Ready(wait_seconds=30)))
            await asyncio.sleep(0.1)
            assert await asyncio.to_thread(server.terminate) == 0
            reply = await worker.recv()
            assert reply.WhichOneof("event") == "task_batch" and not reply.task_batch.tasks
            assert await worker.recv() is None and (await worker.status())[0] == grpc.StatusCode.UNAVAILABLE
            assert await producer.recv() is None
    finally:
        server.stop()


def test_dev_serves_the_streams_on_the_conventional_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free = free_port()
        monkeypatch.setattr(serve, "DEV_PRODUCER_STREAM_PORT", free)
        monkeypatch.setattr(serve, "DEV_WORKER_STREAM_PORT", taken.getsockname()[1])
        base = make_settings(producer_stream_addr="", worker_stream_addr="", host="127.0.0.1")
        # A conventional port that is taken leaves that stream off instead of failing the start.
        s = serve._with_dev_streams(base)
        assert (s.grpc.producer_stream_addr, s.grpc.worker_stream_addr) == (f"127.0.0.1:{free}", "")
        configured = dataclasses.replace(
            base, grpc=dataclasses.replace(base.grpc, producer_stream_addr="127.0.0.1:7001")
        )
        assert serve._with_dev_streams(configured).grpc.producer_stream_addr == "127.0.0.1:7001"
        plain = dataclasses.replace(base, dev=False)
        assert serve._with_dev_streams(plain) is plain
