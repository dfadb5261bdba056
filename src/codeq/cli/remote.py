"""`codeq task …` and `codeq queue …`: the operator's commands for tasks and queues, via the SDK."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from codeq.cli.output import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    console,
    emit_json,
    key_values,
    parse_json,
    parse_time,
    task_details,
    with_admin,
    with_producer,
    with_worker,
)
from codeq.client import Task

task_app = typer.Typer(help="Create, inspect, claim and nack tasks.", no_args_is_help=True)
# Each CLI call is a process of its own: a claim and the nack that follows it act as the same
# worker only if both name it (or both leave it to the token's subject).
WorkerIdOption = Annotated[
    str | None, typer.Option(help="Act as this worker instance of the token (X-Worker-Id).")
]
queue_app = typer.Typer(help="Queue statistics (admin token).", no_args_is_help=True)


def _show_task(task: Task, as_json: bool) -> None:
    if as_json:
        emit_json(task)
    else:
        console.print(task_details(task))


@task_app.command("create")
def task_create(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    command: Annotated[str, typer.Argument(help="The task's command (event type).")],
    payload: Annotated[str, typer.Option(help="JSON payload.")] = "{}",
    priority: Annotated[int, typer.Option(help="0..9, 9 first.")] = 0,
    delay_seconds: Annotated[int | None, typer.Option(help="Postpone the first delivery.")] = None,
    run_at: Annotated[
        str | None, typer.Option(help="First delivery at this RFC 3339 time (with a zone).")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Deliveries before the DLQ.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Repeat-safe create key.")] = None,
    webhook: Annotated[str | None, typer.Option(help="URL called with the result.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create one task (producer token)."""
    body = parse_json(payload, "--payload")
    when = parse_time(run_at, "--run-at") if run_at else None
    task = with_producer(
        url,
        token,
        lambda p: p.create(
            command,
            body,
            priority=priority,
            delay_seconds=delay_seconds,
            run_at=when,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            webhook=webhook,
        ),
    )
    _show_task(task, as_json)


@task_app.command("get")
def task_get(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one task of your tenant."""
    _show_task(with_producer(url, token, lambda p: p.get(task_id)), as_json)


@task_app.command("result")
def task_result(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a task's result (exit 1 with 404 when there is none yet)."""
    record = with_producer(url, token, lambda p: p.result(task_id, wait))
    if as_json:
        emit_json(record)
        return
    rows = [("taskId", record.task_id), ("status", record.status), ("completedAt", record.completed_at)]
    if record.error:
        rows.append(("error", record.error))
    console.print(key_values(rows, ("field", "value")))
    if record.result is not None:
        console.print_json(data=record.result)


@task_app.command("claim")
def task_claim(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    commands: Annotated[
        list[str] | None, typer.Option("--command", "-c", help="Command (repeatable).")
    ] = None,
    lease_seconds: Annotated[int, typer.Option(help="Lease length.")] = 60,
    wait: Annotated[int, typer.Option(help="Seconds to wait for a task (long poll).")] = 0,
    worker_id: WorkerIdOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lease one task (worker token); prints nothing (JSON null) when none is ready.

    The task shown carries its lease token: pass it to `task nack --lease-token` so that the
    nack is refused, not applied, if the lease has meanwhile passed to another claim."""
    task = with_worker(url, token, lambda w: w.claim(commands or [], lease_seconds, wait), worker_id)
    if task is None:
        if as_json:
            emit_json(None)
        else:
            console.print("no task ready")
        return
    _show_task(task, as_json)


@task_app.command("nack")
def task_nack(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    task_id: Annotated[str, typer.Argument(help="Task id (leased by this worker).")],
    delay_seconds: Annotated[
        int | None, typer.Option(help="Retry after this many seconds (default: backoff policy).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why it failed.")] = "",
    lease_token: Annotated[
        int, typer.Option(help="The claim's lease token (0: none, the worker check only).")
    ] = 0,
    worker_id: WorkerIdOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand a leased task back as failed (worker token)."""
    dead_lettered = with_worker(
        url, token, lambda w: w.nack(task_id, delay_seconds, reason, lease_token), worker_id
    )
    status = "dlq" if dead_lettered else "requeued"
    if as_json:
        emit_json({"taskId": task_id, "status": status})
    else:
        console.print(f"{task_id}: {'dead-lettered' if dead_lettered else 'requeued'}")


@queue_app.command("stats")
def queue_stats(
    command: Annotated[str, typer.Argument(help="Command (event type).")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ready, delayed, in-progress and dead-lettered counts of one command in your tenant."""
    result = with_admin(url, token, lambda a: a.queue_stats(command))
    if as_json:
        emit_json(result)
    else:
        console.print(key_values(dataclasses.asdict(result).items(), ("bucket", "tasks")))


@queue_app.command("list")
def queue_list(url: UrlOption = DEFAULT_URL, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Every non-empty queue bucket of your tenant."""
    labels = with_admin(url, token, lambda a: a.queues())
    if as_json:
        emit_json(labels)
    elif not labels:
        console.print("no queued tasks")
    else:
        console.print(key_values(labels.items(), ("queue", "tasks")))
