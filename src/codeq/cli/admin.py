"""`codeq dlq …` and `codeq topic …`: dead-letter tools and the topic catalog (admin token)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

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
    tasks_table,
    with_admin,
)

dlq_app = typer.Typer(help="List, requeue and purge dead-lettered tasks (admin token).", no_args_is_help=True)
topic_app = typer.Typer(help="Create, show and delete topics (admin token).", no_args_is_help=True)

IdsArgument = Annotated[list[str] | None, typer.Argument(help="Task ids (or use --all).", show_default=False)]
AllOption = Annotated[bool, typer.Option("--all", help="Every dead-lettered task of the command.")]


@dlq_app.command("list")
def dlq_list(
    command: Annotated[str, typer.Argument(help="Command (event type).")],
    limit: Annotated[int, typer.Option(help="Tasks per page (at most 500).")] = 50,
    after: Annotated[str, typer.Option(help="Start after this task id (the previous page's next).")] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One page of the command's dead-lettered tasks, in id order."""
    result = with_admin(url, token, lambda a: a.dlq_list(command, limit=limit, after=after))
    if as_json:
        emit_json({"tasks": result.tasks, "nextAfter": result.next_after})
        return
    console.print(tasks_table(result.tasks, f"dead-lettered {command} tasks"))
    if result.next_after:
        console.print(f"more: --after {result.next_after}")


def _check_targets(ids: list[str] | None, every: bool) -> list[str]:
    if every == bool(ids):
        fail("give task ids or --all (not both)")
    return ids or []


@dlq_app.command("requeue")
def dlq_requeue(
    command: Annotated[str, typer.Argument(help="Command (event type).")],
    task_ids: IdsArgument = None,
    every: AllOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead-lettered tasks back in their queue with attempts reset."""
    ids = _check_targets(task_ids, every)
    count = with_admin(url, token, lambda a: a.dlq_requeue(command, ids, all=every))
    if as_json:
        emit_json({"command": command, "requeued": count})
    else:
        console.print(f"requeued {count} {command} task(s)")


@dlq_app.command("purge")
def dlq_purge(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    command: Annotated[str, typer.Argument(help="Command (event type).")],
    task_ids: IdsArgument = None,
    every: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm --all without asking.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete dead-lettered tasks and their results for good."""
    ids = _check_targets(task_ids, every)
    if every and not yes and not typer.confirm(f"Delete every dead-lettered {command} task?"):
        fail("not confirmed; nothing deleted")
    count = with_admin(url, token, lambda a: a.dlq_purge(command, ids, all=every))
    if as_json:
        emit_json({"command": command, "purged": count})
    else:
        console.print(f"purged {count} {command} task(s)")


def _show_topic(topic: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(topic)
        return
    rows = [(k, v) for k, v in topic.items() if k != "policy"]
    rows += [(f"policy.{k}", v) for k, v in topic.get("policy", {}).items()]
    console.print(key_values(rows, ("field", "value")))


@topic_app.command("put")
def topic_put(  # noqa: PLR0913 — Typer takes one parameter per CLI flag
    name: Annotated[str, typer.Argument(help="Topic name (DNS label).")],
    policy: Annotated[
        str | None, typer.Option(help="The whole policy as JSON, e.g. '{\"priorityTiers\":[0]}'.")
    ] = None,
    priority_tiers: Annotated[str, typer.Option(help="Comma list, e.g. 0,5,9.")] = "0",
    max_attempts: Annotated[int, typer.Option(help="1..100.")] = 5,
    dead_letter_topic_ref: Annotated[str, typer.Option(help="Dead-letter topic name.")] = "",
    retention_seconds: Annotated[int, typer.Option(help="0: unset.")] = 0,
    max_consumers: Annotated[int, typer.Option(help="0: unset.")] = 0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update a topic of your tenant."""
    if policy is not None:
        body = parse_json(policy, "--policy")
    else:
        try:
            tiers = [int(part) for part in priority_tiers.split(",") if part.strip()]
        except ValueError:
            fail("--priority-tiers must be a comma list of integers")
        body = {
            "priorityTiers": tiers,
            "maxAttempts": max_attempts,
            "deadLetterTopicRef": dead_letter_topic_ref,
        }
        if retention_seconds:
            body["retentionSeconds"] = retention_seconds
        if max_consumers:
            body["maxConsumers"] = max_consumers
    _show_topic(with_admin(url, token, lambda a: a.topic_put(name, body)), as_json)


@topic_app.command("get")
def topic_get(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a topic of your tenant."""
    _show_topic(with_admin(url, token, lambda a: a.topic_get(name)), as_json)


@topic_app.command("delete")
def topic_delete(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a topic (idempotent: deleting an absent topic succeeds)."""
    with_admin(url, token, lambda a: a.topic_delete(name))
    if as_json:
        emit_json({"topic": name, "deleted": True})
    else:
        console.print(f"deleted topic {name}")
