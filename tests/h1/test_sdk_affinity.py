"""The SDK's HTTP transport keeps a task's calls on the shard process that claimed it
(`codeq-shard-process`, ADR 0009): against a fake server whose two connections answer as two
processes."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from codeq.client._http import HttpTransport
from codeq.wire import http as w
from tests.h1.fake_server import Peer, reply, serving

pytestmark = pytest.mark.timeout(10)
NOW = "2026-12-05T00:00:00Z"


def task_json(task_id: str) -> bytes:
    task = w.TaskJSON(
        id=task_id, command="c", payload="{}", status="IN_PROGRESS", created_at=NOW, updated_at=NOW
    )
    return msgspec.json.encode(task)


def result_json(task_id: str) -> bytes:
    return msgspec.json.encode(w.ResultJSON(task_id=task_id, status="COMPLETED", completed_at=NOW))


async def test_a_result_goes_on_a_connection_to_the_process_that_answered_its_claim() -> None:
    both_open = asyncio.Event()
    names = iter("ab")
    served: list[tuple[str, str]] = []  # (target, the process whose connection served it)

    async def handler(peer: Peer) -> None:
        name = next(names)
        header = f"{w.SHARD_PROCESS_HEADER}: {name}"
        while (request := await peer.read_request()) is not None:
            served.append((request.target, name))
            if request.target.endswith("/claim"):
                if name == "b":
                    both_open.set()
                await both_open.wait()  # the two claims hold two connections
                await peer.send(reply(200, task_json(f"t-{name}"), header))
            else:
                task_id = request.target.split("/")[-2]
                await peer.send(reply(200, result_json(task_id), header))

    async with serving(handler) as server:
        transport = HttpTransport(server.url, "token")
        try:
            claimed = await asyncio.gather(transport.claim(["c"], 30, 0), transport.claim(["c"], 30, 0))
            assert sorted(task.id for task in claimed if task is not None) == ["t-a", "t-b"]
            for task_id in ("t-a", "t-b", "t-b", "t-a"):
                await transport.heartbeat(task_id, 30)
            for task_id in ("t-b", "t-a"):
                await transport.submit_result(task_id, "COMPLETED", {}, "")
        finally:
            await transport.aclose()
    calls = [(target, name) for target, name in served if not target.endswith("/claim")]
    assert len(calls) == 6
    assert all(target.split("/")[-2] == f"t-{name}" for target, name in calls), calls
    assert server.connections == 2


async def test_a_task_claimed_through_another_process_is_sent_to_the_one_that_owns_it() -> None:
    both_open = asyncio.Event()
    names = iter("ab")
    served: list[tuple[str, str]] = []

    async def handler(peer: Peer) -> None:
        name = next(names)
        header = f"{w.SHARD_PROCESS_HEADER}: {name}"
        while (request := await peer.read_request()) is not None:
            served.append((request.target, name))
            if request.target.endswith("/claim"):
                if name == "b":
                    both_open.set()
                await both_open.wait()
                # Process a forwarded its claim to b: the task lives in b's shard.
                owner = (f"{w.TASK_PROCESS_HEADER}: b",) if name == "a" else ()
                await peer.send(reply(200, task_json(f"t-{name}"), header, *owner))
            else:
                task_id = request.target.split("/")[-2]
                await peer.send(reply(200, result_json(task_id), header))

    async with serving(handler) as server:
        transport = HttpTransport(server.url, "token")
        try:
            claimed = await asyncio.gather(transport.claim(["c"], 30, 0), transport.claim(["c"], 30, 0))
            assert sorted(task.id for task in claimed if task is not None) == ["t-a", "t-b"]
            await transport.heartbeat("t-a", 30)
            await transport.submit_result("t-a", "COMPLETED", {}, "")
        finally:
            await transport.aclose()
    calls = [(target, name) for target, name in served if not target.endswith("/claim")]
    assert calls == [("/v1/codeq/tasks/t-a/heartbeat", "b"), ("/v1/codeq/tasks/t-a/result", "b")], calls
