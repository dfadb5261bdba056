"""`codeq cluster …`: operations on a Raft cluster (admin token)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

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
    help="Raft clusters: prepare a new node's data offline (init), act on a running one (admin token).",
    no_args_is_help=True,
)

TRANSFER_PATH = "/v1/codeq/admin/raft/transfer-leader"
_MAX_REDIRECTS = 3  # a follower names the leader; the leader may just have changed


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
        reply = asyncio.run(_post_following_leader(url, body, headers))
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


async def _post_following_leader(url: str, body: bytes, headers: list[tuple[str, str]]) -> H1Response:
    client = H1Client(url)
    try:
        target = url.rstrip("/") + TRANSFER_PATH
        for _ in range(_MAX_REDIRECTS):
            reply = await client.request("POST", target, headers=headers, body=body, timeout=15.0)
            location = reply.header("location")
            if reply.status != 307 or not location:
                return reply
            target = location
        return reply
    finally:
        await client.aclose()
