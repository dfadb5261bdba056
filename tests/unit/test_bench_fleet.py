"""`codeq bench`'s server figures: forwarded commands from /metrics, CPU per server process."""

from __future__ import annotations

import os
import subprocess
import sys

from codeq.cli.bench_fleet import commands_by_route, merge
from codeq.cli.bench_load import Tally, server_cpu_seconds

PAGE = """# HELP codeq_shard_commands_total Commands submitted by this process, by route.
# TYPE codeq_shard_commands_total counter
codeq_shard_commands_total{shard_process="0",route="local"} 90.0
codeq_shard_commands_total{shard_process="0",route="forwarded"} 4.0
codeq_shard_commands_total{shard_process="1",route="local"} 70.0
codeq_shard_commands_total{shard_process="1",route="forwarded"} 6.0
codeq_ready{shard_process="0"} 1.0
"""


def test_forwarded_and_local_commands_are_summed_over_shard_processes() -> None:
    assert commands_by_route(PAGE) == {"local": 160.0, "forwarded": 10.0}
    assert commands_by_route("codeq_ready 1.0\n") is None  # one process: no such metric


def test_the_server_cpu_covers_each_shard_process_under_it() -> None:
    env = {**os.environ, "CODEQ_SHARD_PROCESS": "3"}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        # Until the child has exec'd, /proc shows the environment it was forked with.
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        found = server_cpu_seconds(os.getpid())
        assert set(found) >= {"server", "shard3"}
        assert all(seconds >= 0 for seconds in found.values())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def test_client_tallies_add_up() -> None:
    one, two = (
        Tally(created=3, cycles=2, cycle_ms=[1.0], elapsed=10.0),
        Tally(created=1, cycles=5, elapsed=10.2),
    )
    total = merge([one, two])
    assert (total.created, total.cycles, total.cycle_ms, total.elapsed) == (4, 7, [1.0], 10.2)


def test_connections_are_counted_per_process_and_listening_port() -> None:
    import socket

    from codeq.cli.bench_sockets import connections_by_process, port_of

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            # Only the accepted ends have the listening port as their own: the clients' do not.
            found = connections_by_process({"me": os.getpid()}, {"worker": port, "http": port + 1})
            assert found == {"me": {"worker": 2}}
        finally:
            for sock in clients + accepted:
                sock.close()
    assert port_of("127.0.0.1:9092") == 9092
    assert port_of("http://127.0.0.1:8080") == 8080
    assert port_of("grpc://[::1]:9091") == 9091
    assert port_of("localhost") is None


def _completed(load: object, task_id: str, payload: object) -> None:
    from codeq.cli.bench_load import Load
    from codeq.client import Job
    from codeq.client._models import Task

    assert isinstance(load, Load)
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    task = Task(
        id=task_id, command="bench", payload=payload, status="IN_PROGRESS", created_at=now, updated_at=now
    )
    load._on_ack(Job(task, None, 300), "completed")  # type: ignore[arg-type]  # no transport used


async def test_a_client_completing_another_clients_tasks_frees_its_own_producers_and_times_them() -> None:
    """With several client processes a worker completes tasks other processes created: before,
    only the creator's count went down (never, when its tasks ran elsewhere), so its producers
    stopped at the backlog bound, and those tasks' latencies were not recorded anywhere."""
    import time

    from codeq.cli.bench_load import Load, LoadPlan

    plan = LoadPlan("grpc-batch", "", "", "", "", "", max_backlog=3)
    load = Load(plan)
    load.tally.recording = True
    load._created([type("T", (), {"id": f"mine-{n}"})() for n in range(3)], time.perf_counter())
    assert not load._room.is_set()  # at the bound: producers wait
    for n in range(3):  # tasks another process created, completed by this one's worker
        _completed(load, f"theirs-{n}", {"p": "", "sent": time.time() - 0.05})
    assert load._room.is_set()
    assert load.tally.cycles == 3
    assert len(load.tally.cycle_ms) == 3 and all(ms >= 50 for ms in load.tally.cycle_ms)
    _completed(load, "foreign", {"other": "payload"})  # not ours: counted, not timed
    assert load.tally.cycles == 4 and len(load.tally.cycle_ms) == 3
