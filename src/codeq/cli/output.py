"""What the remote commands share: connection options, output as Rich tables or JSON, exit codes.

Exit codes: 0 done; 1 the server refused the request (its status and message are printed);
2 bad usage or local input (no token, unparsable JSON, ...); 3 the server could not be
reached or failed (connection error, timeout, 5xx).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from codeq.client import AsyncAdmin, AsyncProducer, CodeqError, Task, Transport, connect

T = TypeVar("T")

DEFAULT_URL = "http://localhost:8080"
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

UrlOption = Annotated[
    str, typer.Option("--url", envvar="CODEQ_BASE_URL", help="codeq HTTP base URL (env CODEQ_BASE_URL).")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Bearer token (default: env CODEQ_PRODUCER_TOKEN, or CODEQ_WORKER_TOKEN for worker commands).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    errors.print(f"[red]codeq:[/red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def token_for(token: str | None, role: str) -> str:
    """`--token`, else the role's environment variable."""
    variable = "CODEQ_WORKER_TOKEN" if role == "worker" else "CODEQ_PRODUCER_TOKEN"
    chosen = token or os.environ.get(variable, "")
    if not chosen:
        fail(f"no {role} token: pass --token or set {variable}")
    return chosen


def run(call: Callable[[], Awaitable[T]]) -> T:
    """Run one SDK call; a failure becomes a message on stderr and the matching exit code."""
    try:
        return asyncio.run(_awaited(call))
    except CodeqError as exc:
        if exc.status == 0 or exc.status >= 500:
            fail(f"server unavailable: {exc}", EXIT_UNAVAILABLE)
        field = f" (field {exc.field})" if exc.field else ""
        fail(f"error ({exc.status}): {exc.message}{field}", EXIT_REFUSED)


async def _awaited(call: Callable[[], Awaitable[T]]) -> T:
    return await call()


def with_admin(url: str, token: str | None, call: Callable[[AsyncAdmin], Awaitable[T]]) -> T:
    """Run `call` on an admin client (the producer token), closing it after."""

    async def scoped() -> T:
        async with AsyncAdmin(url, token_for(token, "producer")) as admin:
            return await call(admin)

    return run(scoped)


def with_producer(url: str, token: str | None, call: Callable[[AsyncProducer], Awaitable[T]]) -> T:
    """Run `call` on a producer without retries (an operator sees every failure)."""

    async def scoped() -> T:
        async with AsyncProducer(url, token_for(token, "producer"), retries=0) as producer:
            return await call(producer)

    return run(scoped)


def with_worker(
    url: str, token: str | None, call: Callable[[Transport], Awaitable[T]], worker_id: str | None = None
) -> T:
    """Run `call` on the worker token's transport (one request, no retries), as the worker
    instance `worker_id` (None: the token's subject)."""

    async def scoped() -> T:
        transport = connect(url, token_for(token, "worker"), timeout=10.0, worker_id=worker_id)
        try:
            return await call(transport)
        finally:
            await transport.aclose()

    return run(scoped)


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"{what} is not valid JSON: {exc}")


def parse_time(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{what} is not an RFC 3339 time: {text!r}")
    if moment.tzinfo is None:
        fail(f"{what} needs a time zone (e.g. {text}Z)")
    return moment


def emit_json(value: Any) -> None:
    """Print JSON with the API's field names (`maxAttempts`, `leaseToken`), as a script reading
    both the CLI and the HTTP API expects; the data inside (payloads, results) is left as it is."""
    sys.stdout.write(json.dumps(_api_names(value), indent=2, default=str) + "\n")


def _api_names(value: Any) -> Any:
    if isinstance(value, msgspec.Struct) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        fields = {name: getattr(value, name) for name in _field_names(value)}
        return {_camel(name): _api_names(item) for name, item in fields.items()}
    if isinstance(value, list | tuple):
        return [_api_names(item) for item in value]
    if isinstance(value, dict):
        return {key: _api_names(item) for key, item in value.items()}
    return msgspec.to_builtins(value)


def _field_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, msgspec.Struct):
        return value.__struct_fields__
    return tuple(field.name for field in dataclasses.fields(value))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else ""


def tasks_table(tasks: Iterable[Task], title: str = "") -> Table:
    table = Table(title=title or None)
    for column in ("id", "command", "status", "priority", "attempts", "created", "error"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        table.add_row(
            task.id,
            task.command,
            task.status,
            str(task.priority),
            f"{task.attempts}/{task.max_attempts}",
            _when(task.created_at),
            task.error,
        )
    return table


def task_details(task: Task) -> Table:
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in msgspec.structs.asdict(task).items():
        if value in (None, "", False) and key not in ("status",):
            continue
        text = _when(value) if isinstance(value, datetime) else value
        table.add_row(key, text if isinstance(text, str) else json.dumps(text, default=str))
    return table


def key_values(rows: Iterable[tuple[str, Any]], headers: tuple[str, str] = ("name", "value")) -> Table:
    table = Table()
    table.add_column(headers[0])
    table.add_column(headers[1], justify="right")
    for key, value in rows:
        table.add_row(key, str(value))
    return table
