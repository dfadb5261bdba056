"""`codeq task complete|fail|abandon|heartbeat`: a worker's reports about a task it holds, via the SDK."""

from __future__ import annotations

from typing import Annotated

import typer

from codeq.cli.output import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    console,
    emit_json,
    fail,
    parse_json,
    with_worker,
)
from codeq.cli.remote import WorkerIdOption, task_app

TaskIdArgument = Annotated[str, typer.Argument(help="Task id (leased by this worker).")]
LeaseTokenOption = Annotated[
    int, typer.Option(help="The claim's lease token (0: none, the worker check only).")
]


@task_app.command("complete")
def task_complete(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    task_id: TaskIdArgument,
    result: Annotated[str, typer.Option(help="The result, a JSON object.")] = "{}",
    lease_token: LeaseTokenOption = 0,
    worker_id: WorkerIdOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finish a leased task as COMPLETED with a result (worker token)."""
    value = parse_json(result, "--result")
    if not isinstance(value, dict):
        fail("--result must be a JSON object")
    done = with_worker(
        url, token, lambda w: w.submit_result(task_id, "COMPLETED", value, "", lease_token), worker_id
    )
    _show(task_id, done.status, as_json)


@task_app.command("fail")
def task_fail(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    task_id: TaskIdArgument,
    error: Annotated[str, typer.Option(help="Why it failed (required).")],
    lease_token: LeaseTokenOption = 0,
    worker_id: WorkerIdOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finish a leased task as FAILED for good, no retry (worker token; `task nack` retries)."""
    done = with_worker(
        url, token, lambda w: w.submit_result(task_id, "FAILED", None, error, lease_token), worker_id
    )
    _show(task_id, done.status, as_json)


@task_app.command("abandon")
def task_abandon(
    task_id: TaskIdArgument,
    lease_token: LeaseTokenOption = 0,
    worker_id: WorkerIdOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand a leased task back without spending an attempt (worker token)."""
    with_worker(url, token, lambda w: w.abandon(task_id, lease_token), worker_id)
    _show(task_id, "PENDING", as_json)


@task_app.command("heartbeat")
def task_heartbeat(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    task_id: TaskIdArgument,
    extend_seconds: Annotated[int, typer.Option(help="Extend the lease by this many seconds.")] = 60,
    lease_token: LeaseTokenOption = 0,
    worker_id: WorkerIdOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Extend the lease on a task this worker holds (worker token)."""
    with_worker(url, token, lambda w: w.heartbeat(task_id, extend_seconds, lease_token), worker_id)
    _show(task_id, "IN_PROGRESS", as_json)


def _show(task_id: str, status: str, as_json: bool) -> None:
    if as_json:
        emit_json({"taskId": task_id, "status": status})
    else:
        console.print(f"{task_id}: {status}")
