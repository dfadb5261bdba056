"""`codeq worker APP` as a process: the example module against a real `codeq serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeq.client import Producer, Result, Task
from tests.support.server import ServerProcess

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
APP = "examples.worker_app:worker"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("worker-cmd") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def producer(server: ServerProcess) -> Iterator[Producer]:
    with Producer(server.url, "dev-producer") as client:
        yield client


def start_worker(server: ServerProcess, *flags: str, token: str = "dev-worker") -> subprocess.Popen[str]:
    """The installed console script's code path (codeq.cli.entry), run from the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEQ_")}
    env["CODEQ_TOKEN"] = token
    command = [sys.executable, "-m", "codeq.cli.entry", "worker", APP, "--url", server.url, *flags]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(producer: Producer, task_id: str, status: str) -> Task:
    for _ in range(600):
        task = producer.get(task_id)
        if task.status == status:
            return task
        time.sleep(0.02)  # polling the server's report of the task, not waiting on behaviour
    raise AssertionError(f"task {task_id} never became {status}")


def test_burst_runs_the_example_handlers_and_exits_zero(server: ServerProcess, producer: Producer) -> None:
    tasks = [producer.create("resize", {"width": w}) for w in (640, 100)]
    worker = start_worker(server, "--burst")
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    results = [producer.result(t.id) for t in tasks]
    assert [r.result for r in results] == [{"width": 320}, {"width": 50}]
    assert all(isinstance(r, Result) and r.status == "COMPLETED" for r in results)


def test_sigterm_mid_task_hands_the_task_back(server: ServerProcess, producer: Producer) -> None:
    task = producer.create("sleep", {"seconds": 600})
    worker = start_worker(server, "--shutdown-timeout", "0.2")
    held = wait_for(producer, task.id, "IN_PROGRESS")
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)  # the 600 s handler thread is not waited for
    assert worker.returncode == 0, err
    back = producer.get(task.id)
    assert (back.status, back.attempts, back.worker_id) == ("PENDING", held.attempts - 1, "")
    _cancel(producer, task.id)


def test_two_processes_each_hold_a_task_and_both_stop_on_sigterm(
    server: ServerProcess, producer: Producer
) -> None:
    tasks = [producer.create("sleep", {"seconds": 600}) for _ in range(2)]
    worker = start_worker(server, "--processes", "2", "--concurrency", "1", "--shutdown-timeout", "0.2")
    held = [wait_for(producer, t.id, "IN_PROGRESS") for t in tasks]
    pids = {h.worker_id.split("-")[-2] for h in held}
    assert len(pids) == 2 and str(worker.pid) not in pids
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert [producer.get(t.id).status for t in tasks] == ["PENDING", "PENDING"]
    for t in tasks:
        _cancel(producer, t.id)


def test_a_refused_token_is_one_line_and_exit_status_1(server: ServerProcess) -> None:
    worker = start_worker(server, token="not-a-token")
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert err.strip().splitlines()[-1] == "codeq worker: the server refused the worker (401): invalid token"
    assert "Traceback" not in err


def test_an_app_that_names_no_worker_is_a_usage_error(server: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "codeq.cli.entry", "worker", "examples.worker_app:resize"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "codeq worker: examples.worker_app:resize is a function, not a codeq Worker\n"


def _cancel(producer: Producer, task_id: str) -> None:
    """Keep the shared server's queue empty of 600 s tasks for the next test."""
    from codeq.client import Admin

    with Admin(producer.base_url, "dev-producer") as admin:
        admin.cancel(task_id)
