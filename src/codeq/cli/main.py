"""The `codeq` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from codeq import __version__

cli = typer.Typer(
    name="codeq",
    help="codeq: a durable, multi-tenant task queue.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"codeq {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """codeq: a durable, multi-tenant task queue."""


@cli.command()
def serve(  # noqa: PLR0913 - Typer takes one parameter per CLI flag
    config: Annotated[
        str | None, typer.Option("--config", help="YAML config file (default: $CODEQ_CONFIG_PATH).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 0.0.0.0).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080, env PORT).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Data directory (default ./data).")] = None,
    shards: Annotated[int | None, typer.Option("--shards", help="Number of stores (numShards).")] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Enable the dev tokens dev-producer and dev-worker (tenant dev).")
    ] = False,
    no_fsync: Annotated[
        bool,
        typer.Option("--no-fsync", help="Acknowledge writes before they are fsynced (fsyncOnCommit: false)."),
    ] = False,
    memory: Annotated[
        bool, typer.Option("--memory", help="Keep everything in memory (nothing survives a restart).")
    ] = False,
    producer_stream_addr: Annotated[
        str | None,
        typer.Option(
            "--producer-stream-addr",
            help="host:port of the gRPC producer stream (producerStreamAddr; --dev: <host>:9092).",
        ),
    ] = None,
    worker_stream_addr: Annotated[
        str | None,
        typer.Option(
            "--worker-stream-addr",
            help="host:port of the gRPC worker stream (workerStreamAddr; --dev: <host>:9091).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (and the gRPC streams, if set) with the embedded store until SIGTERM or Ctrl-C."""
    from codeq.cli.serve import run
    from codeq.config import ConfigError, load_settings

    flags = {
        "host": host,
        "port": port,
        "data_path": data,
        "num_shards": shards,
        "producer_stream_addr": producer_stream_addr,
        "worker_stream_addr": worker_stream_addr,
    }
    overrides: dict[str, object] = {k: v for k, v in flags.items() if v is not None}
    if dev:
        overrides["dev"] = True
    if no_fsync:
        overrides["fsync_on_commit"] = False
    if memory:
        overrides["provider"] = "memory"
    try:
        settings = load_settings(config_path=config, overrides=overrides)
    except ConfigError as exc:
        print("codeq: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise typer.Exit(2) from None
    run(settings)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
