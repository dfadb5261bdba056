"""`codeq cluster …`: operations on a Raft cluster (admin token; membership: operator token)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Annotated, Any

import typer

from codeq.cli.output import (
    DEFAULT_URL,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    JsonOption,
    TokenOption,
    UrlOption,
    emit_json,
    fail,
    token_for,
)
from codeq.h1 import H1Client, H1Error, H1Response

cluster_app = typer.Typer(
    help=(
        "Raft clusters: prepare a new node's data offline (init), act on a running one "
        "(admin token; add-node and remove-node: operator token)."
    ),
    no_args_is_help=True,
)

TRANSFER_PATH = "/v1/codeq/admin/raft/transfer-leader"
MEMBERS_PATH = "/v1/codeq/admin/raft/members"
STATUS_PATH = "/v1/codeq/raft/status"
_MAX_REDIRECTS = 3  # a follower names the leader; the leader may just have changed
_RETRY_SECONDS = 60.0


@cluster_app.command("transfer-leader")
def transfer_leader(
    to: Annotated[str, typer.Option("--to", help="Id of the node that should lead (raft.selfId).")],
    shard: Annotated[int, typer.Option("--shard", help="Which shard's Raft group.")] = 0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand a shard's leadership to NODE now, without waiting for an election timeout (any
    node's URL will do: a follower redirects to the leader)."""
    body = json.dumps({"to": to, "shard": shard}).encode()
    bearer = f"Bearer {token_for(token, 'producer')}"
    headers = [("authorization", bearer), ("content-type", "application/json")]
    try:
        reply = asyncio.run(_post_following_leader(url, body, headers, TRANSFER_PATH))
    except (H1Error, OSError) as exc:
        fail(f"server unavailable: {exc}", EXIT_UNAVAILABLE)
    answer = json.loads(reply.body or b"{}")
    if reply.status != 200:
        code = EXIT_UNAVAILABLE if reply.status >= 500 else EXIT_REFUSED
        fail(f"error ({reply.status}): {answer.get('error', reply.body[:200])}", code)
    if as_json:
        emit_json(answer)
    else:
        print(f"shard {answer['shardIdx']} is led by {answer['leaderId']}")


@cluster_app.command("init")
def init(
    backup: Annotated[str, typer.Option("--from", help="A directory written by `codeq backup`.")],
    data: Annotated[str, typer.Option("--data", help="This node's new (absent or empty) data directory.")],
    shards: Annotated[
        int | None, typer.Option("--shards", help="The cluster's numShards: must be the backup's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Prepare the data directory of one node of a NEW Raft cluster from a `codeq backup`
    (offline; run it for every node, from the same backup, before the cluster's first start)."""
    from codeq.cli.migrate import init_node

    init_node(backup, data, shards, as_json)


async def _post_following_leader(
    url: str, body: bytes, headers: list[tuple[str, str]], path: str, timeout: float = 15.0
) -> H1Response:
    client = H1Client(url)
    try:
        target = url.rstrip("/") + path
        for _ in range(_MAX_REDIRECTS):
            reply = await client.request("POST", target, headers=headers, body=body, timeout=timeout)
            location = reply.header("location")
            if reply.status != 307 or not location:
                return reply
            target = location
        return reply
    finally:
        await client.aclose()


ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Accept an even number of voters afterwards (a step of a replacement: two while "
        "replacing a dead node, four a live one); without it the command asks on a terminal, "
        "else refuses.",
    ),
]


@cluster_app.command("add-node")
def add_node(  # noqa: PLR0913 - Typer takes one parameter per CLI flag
    node: Annotated[str, typer.Argument(help="The new node's id (its raft.selfId).")],
    raft: Annotated[str, typer.Option("--raft", help="Its shard 0 raft host:port (shard i: port + i).")],
    http: Annotated[str, typer.Option("--http", help="Its HTTP base URL, for redirects.")],
    grpc_producer: Annotated[
        str, typer.Option("--grpc-producer", help="Its producer stream, grpc://host:port (optional).")
    ] = "",
    grpc_worker: Annotated[
        str, typer.Option("--grpc-worker", help="Its worker stream, grpc://host:port (optional).")
    ] = "",
    force: ForceOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add NODE as a voter of every shard's Raft group, one group at a time, each change
    committed through that group's log before the next. Start NODE first with raft.join
    (RAFT_JOIN=true) and its own id and addresses; it catches up from the leader."""
    fields = {"raft": raft, "http": http, "producerStream": grpc_producer, "workerStream": grpc_worker}
    _change_every_group(url, token, {"op": "add", "id": node, **fields}, force, as_json)


@cluster_app.command("remove-node")
def remove_node(
    node: Annotated[str, typer.Argument(help="The id of the node to remove.")],
    force: ForceOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove NODE from every shard's Raft group, one group at a time (a leader hands its
    groups over first). Refused for the last voter, or when the voters left alive would be
    no majority. Stop NODE's process afterwards: it no longer takes part."""
    _change_every_group(url, token, {"op": "remove", "id": node}, force, as_json)


def _change_every_group(
    url: str, token: str | None, change: dict[str, Any], force: bool, as_json: bool
) -> None:
    bearer = f"Bearer {token_for(token, 'producer')}"
    headers = [("authorization", bearer), ("content-type", "application/json")]
    answers = []
    try:
        for shard in range(asyncio.run(_num_groups(url, headers))):
            answer, force = _change_one_group(url, headers, {**change, "shard": shard}, force)
            answers.append(answer)
            if as_json:
                continue
            if answer.get("unchanged"):
                print(f"shard {shard}: {change['id']} is not a voter: nothing to do")
            else:
                voters = ", ".join(answer["voters"])
                print(f"shard {shard}: {change['op']} {change['id']} committed; voters {voters}")
    except (H1Error, OSError) as exc:
        fail(f"server unavailable: {exc}", EXIT_UNAVAILABLE)
    if answers and all(answer.get("unchanged") for answer in answers):
        fail(f"{change['id']} is not a voter of any shard's group", EXIT_REFUSED)
    if as_json:
        emit_json({"groups": answers})
    elif answers and answers[-1].get("warning"):
        print(f"warning: {answers[-1]['warning']}", file=sys.stderr)


def _change_one_group(
    url: str, headers: list[tuple[str, str]], change: dict[str, Any], force: bool
) -> tuple[dict[str, Any], bool]:
    """One group's change on its leader. An even-count refusal asks the operator once; a 503
    (no leader yet, or one just elected) is retried for up to a minute."""
    deadline = time.monotonic() + _RETRY_SECONDS
    retried = False  # after a 503, a change "in flight" is most likely this command's own
    while True:
        body = json.dumps({**change, "force": force}).encode()
        reply = asyncio.run(_post_following_leader(url, body, headers, MEMBERS_PATH, 60.0))
        answer: dict[str, Any] = json.loads(reply.body or b"{}")
        if reply.status == 200:
            return answer, force
        if change["op"] == "remove" and reply.status == 404:
            # Already out of this group: a re-run after a partial failure, or a retry whose
            # first answer was lost. Reported per group; refused only if no group had it.
            return {"shardIdx": change["shard"], "id": change["id"], "voters": [], "unchanged": True}, force
        in_flight = retried and reply.status == 409 and "in flight" in str(answer.get("error", ""))
        if (reply.status == 503 or in_flight) and time.monotonic() < deadline:
            retried = True
            time.sleep(0.5)  # an election is under way: the next leader takes the change
            continue
        even = reply.status == 409 and "even" in str(answer.get("error", ""))
        if even and not force and _confirm(answer):
            force = True
            continue
        code = EXIT_UNAVAILABLE if reply.status >= 500 else EXIT_REFUSED
        fail(
            f"shard {change['shard']}: error ({reply.status}): {answer.get('error', reply.body[:200])}", code
        )


def _confirm(answer: dict[str, Any]) -> bool:
    """Ask on a terminal whether to go ahead with an even number of voters."""
    if not sys.stdin.isatty():
        return False
    print(f"warning: {answer.get('error', '')}", file=sys.stderr)
    return typer.confirm("Go ahead anyway?", default=False)


async def _num_groups(url: str, headers: list[tuple[str, str]]) -> int:
    client = H1Client(url)
    try:
        reply = await client.request("GET", url.rstrip("/") + STATUS_PATH, headers=headers, timeout=10.0)
    finally:
        await client.aclose()
    status = json.loads(reply.body or b"{}")
    if reply.status != 200 or not status.get("enabled"):
        fail(f"raft is not enabled at {url} (or the status is unreadable: {reply.status})", EXIT_REFUSED)
    return int(status["numGroups"])
