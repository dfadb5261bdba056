"""`codeq task …` and `codeq queue …`: the operator's commands for tasks and queues, via the SDK."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

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
    tasks_table,
    with_admin,
    with_producer,
    with_worker,
)
from codeq.client import QueueOverview, Task

task_app = typer.Typer(help="Create, inspect, list, cancel, claim and nack tasks.", no_args_is_help=True)
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
    """Every command of your tenant: tasks waiting, running, dead-lettered, and finished lately."""
    rows = with_admin(url, token, lambda a: a.overview())
    if as_json:
        emit_json(rows)
    elif not rows:
        console.print("no queues")
    else:
        console.print(_overview_table(rows))


_OVERVIEW_COLUMNS = (
    "command", "ready", "delayed", "in progress", "dead-lettered",
    "completed 1m", "failed 1m", "completed 1h", "failed 1h",
)  # fmt: skip


def _overview_table(rows: list[QueueOverview]) -> Table:
    table = Table()
    for number, column in enumerate(_OVERVIEW_COLUMNS):
        table.add_column(column, justify="left" if number == 0 else "right")
    for row in rows:
        counts = dataclasses.astuple(row)[1:]
        table.add_row(row.command, *(str(count) for count in counts))
    return table


@task_app.command("list")
def task_list(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    command: Annotated[str, typer.Argument(help="The tasks' command (event type).")],
    state: Annotated[
        str,
        typer.Option(help="ready, delayed, in_progress, completed, failed, dead_lettered or cancelled."),
    ] = "ready",
    oldest: Annotated[bool, typer.Option("--oldest", help="Oldest first (default: newest first).")] = False,
    limit: Annotated[int, typer.Option(help="Tasks per page (at most 500).")] = 50,
    cursor: Annotated[str, typer.Option(help="The previous page's next cursor.")] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One page of a command's tasks in one state (admin token)."""
    order = "oldest" if oldest else "newest"
    page = with_admin(
        url, token, lambda a: a.list_tasks(command, state=state, order=order, cursor=cursor, limit=limit)
    )
    if as_json:
        emit_json({"tasks": page.tasks, "nextCursor": page.next_cursor})
        return
    console.print(tasks_table(page.tasks, f"{state} {command} tasks"))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@task_app.command("cancel")
def task_cancel(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a task (admin token): at once when waiting, at its worker's next call when leased."""
    task = with_admin(url, token, lambda a: a.cancel(task_id))
    if as_json:
        emit_json(task)
    elif task.status == "CANCELLED":
        console.print(f"{task_id}: cancelled")
    else:
        console.print(f"{task_id}: cancel requested (its worker is told at its next call)")
