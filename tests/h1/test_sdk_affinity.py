"""The SDK's HTTP transport keeps a task's calls on the shard process that claimed it
(`codeq-shard-process`, ADR 0009): against a fake server whose two connections answer as two
processes."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from codeq.client._http import HttpTransport
from codeq.wire import http as w
from tests.h1.fake_server import Handler, Peer, reply, serving

pytestmark = pytest.mark.timeout(10)
NOW = "2026-12-05T00:00:00Z"


def task_json(task_id: str) -> bytes:
    task = w.TaskJSON(
        id=task_id, command="c", payload="{}", status="IN_PROGRESS", created_at=NOW, updated_at=NOW
    )
    return msgspec.json.encode(task)


def result_json(task_id: str) -> bytes:
    return msgspec.json.encode(w.ResultJSON(task_id=task_id, status="COMPLETED", completed_at=NOW))


def two_processes(served: list[tuple[str, str]], owners: dict[str, str] | None = None) -> Handler:
    """A fake node of two shard processes, "a" and "b", a connection each. A claim is held
    until both connections are open (so two claims hold both), then answered with the task
    "t-<process>", and with its owner's name where `owners` gives one (a forwarded claim).
    `served` gets (target, process) of every request."""
    both_open = asyncio.Event()
    names = iter("ab")

    async def handler(peer: Peer) -> None:
        name = next(names)
        header = f"{w.SHARD_PROCESS_HEADER}: {name}"
        owner = (f"{w.TASK_PROCESS_HEADER}: {owners[name]}",) if owners and name in owners else ()
        while (request := await peer.read_request()) is not None:
            served.append((request.target, name))
            if request.target.endswith("/claim"):
                if name == "b":
                    both_open.set()
                await both_open.wait()
                await peer.send(reply(200, task_json(f"t-{name}"), header, *owner))
            else:
                task_id = request.target.split("/")[-2]
                await peer.send(reply(200, result_json(task_id), header))

    return handler


async def claim_on_both(transport: HttpTransport) -> None:
    claimed = await asyncio.gather(transport.claim(["c"], 30, 0), transport.claim(["c"], 30, 0))
    assert sorted(task.id for task in claimed if task is not None) == ["t-a", "t-b"]


async def test_a_result_goes_on_a_connection_to_the_process_that_answered_its_claim() -> None:
    served: list[tuple[str, str]] = []  # (target, the process whose connection served it)
    async with serving(two_processes(served)) as server:
        transport = HttpTransport(server.url, "token")
        try:
            await claim_on_both(transport)
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
    served: list[tuple[str, str]] = []
    # Process a forwarded its claim to b: the task it answers with lives in b's shard.
    async with serving(two_processes(served, owners={"a": "b"})) as server:
        transport = HttpTransport(server.url, "token")
        try:
            await claim_on_both(transport)
            await transport.heartbeat("t-a", 30)
            await transport.submit_result("t-a", "COMPLETED", {}, "")
        finally:
            await transport.aclose()
    calls = [(target, name) for target, name in served if not target.endswith("/claim")]
    assert calls == [("/v1/codeq/tasks/t-a/heartbeat", "b"), ("/v1/codeq/tasks/t-a/result", "b")], calls
