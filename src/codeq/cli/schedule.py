"""`codeq schedule …`: create, show, list and delete durable schedules (admin token)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from codeq.cli.output import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    console,
    emit_json,
    fail,
    key_values,
    parse_json,
    with_admin,
)

schedule_app = typer.Typer(
    help="Create, show, list and delete schedules (admin token).", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="Schedule name (DNS label).")]


def _show(schedule: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(schedule)
        return
    console.print(key_values(list(schedule.items()), ("field", "value")))


@schedule_app.command("put")
def schedule_put(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    name: NameArgument,
    command: Annotated[str, typer.Option("--command", "-c", help="Command (event type) of each task.")],
    payload: Annotated[str, typer.Option(help="Each task's payload, as JSON.")] = "{}",
    cron: Annotated[str, typer.Option(help="A cron expression, e.g. '0 3 * * *'.")] = "",
    timezone: Annotated[str, typer.Option(help="The cron expression's time zone.")] = "UTC",
    every_seconds: Annotated[int, typer.Option(help="A fixed interval instead of --cron.")] = 0,
    jitter_seconds: Annotated[int, typer.Option(help="Spread each firing over this many seconds.")] = 0,
    catch_up: Annotated[str, typer.Option(help="skip or once: slots missed while no leader ran.")] = "skip",
    priority: Annotated[int, typer.Option(help="Each task's priority.")] = 0,
    max_attempts: Annotated[int, typer.Option(help="Each task's attempts (0: server default).")] = 0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update a schedule of your tenant: give --cron or --every-seconds."""
    if bool(cron) == bool(every_seconds):
        fail("give exactly one of --cron and --every-seconds")
    body: dict[str, Any] = {
        "command": command,
        "payload": parse_json(payload, "--payload"),
        "priority": priority,
        "maxAttempts": max_attempts,
        "jitterSeconds": jitter_seconds,
        "catchUp": catch_up,
    }
    body.update({"cron": cron, "timezone": timezone} if cron else {"everySeconds": every_seconds})
    _show(with_admin(url, token, lambda a: a.schedule_put(name, body)), as_json)


@schedule_app.command("get")
def schedule_get(
    name: NameArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Show a schedule of your tenant."""
    _show(with_admin(url, token, lambda a: a.schedule_get(name)), as_json)


@schedule_app.command("list")
def schedule_list(
    url: UrlOption = DEFAULT_URL, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Every schedule of your tenant, by name."""
    schedules = with_admin(url, token, lambda a: a.schedule_list())
    if as_json:
        emit_json(schedules)
        return
    table = Table()
    for header in ("name", "command", "when", "last fired slot"):
        table.add_column(header)
    for s in schedules:
        table.add_row(s["name"], s["command"], s["cron"] or f"every {s['everySeconds']}s", s["lastSlotAt"])
    console.print(table)


@schedule_app.command("delete")
def schedule_delete(
    name: NameArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Delete a schedule (idempotent: deleting an absent one succeeds)."""
    with_admin(url, token, lambda a: a.schedule_delete(name))
    if as_json:
        emit_json({"schedule": name, "deleted": True})
    else:
        console.print(f"deleted schedule {name}")
