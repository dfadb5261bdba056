"""The `codeq` command line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from codeq import __version__

if TYPE_CHECKING:  # the bench modules load only for `codeq bench`
    from codeq.cli.bench import SpawnOptions
    from codeq.cli.bench_load import LoadPlan

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
    shard_processes: Annotated[
        bool | None,
        typer.Option(
            "--shard-processes/--no-shard-processes",
            help="One process per shard (shardProcesses; the default with --shards > 1).",
        ),
    ] = None,
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
    if shard_processes is not None:
        overrides["shard_processes"] = shard_processes
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


@cli.command()
def bench(  # noqa: PLR0913 - Typer takes one parameter per CLI flag
    mode: Annotated[str, typer.Option(help="http | http-batch | grpc | grpc-batch")] = "http",
    spawn: Annotated[bool, typer.Option("--spawn", help="Start a private server for the run.")] = False,
    fsync: Annotated[str, typer.Option(help="With --spawn: on | off.")] = "on",
    shards: Annotated[int, typer.Option(help="With --spawn: number of shards.")] = 1,
    shard_processes: Annotated[
        bool | None,
        typer.Option(
            "--shard-processes/--no-shard-processes",
            help="With --spawn: a process per shard (the server's default with --shards > 1).",
        ),
    ] = None,
    clients: Annotated[int, typer.Option(help="Client processes running the load (with --duration).")] = 1,
    url: Annotated[
        str, typer.Option(envvar="CODEQ_BASE_URL", help="HTTP base URL of the server to load.")
    ] = "http://127.0.0.1:8080",
    producer_addr: Annotated[str, typer.Option(help="Producer stream host:port.")] = "127.0.0.1:9092",
    worker_addr: Annotated[str, typer.Option(help="Worker stream host:port.")] = "127.0.0.1:9091",
    producer_token: Annotated[str, typer.Option(envvar="CODEQ_PRODUCER_TOKEN")] = "dev-producer",
    worker_token: Annotated[str, typer.Option(envvar="CODEQ_WORKER_TOKEN")] = "dev-worker",
    producers: Annotated[int, typer.Option(help="Producer coroutines.")] = 32,
    concurrency: Annotated[
        int, typer.Option(help="Worker handler slots (0: 64, or 4 batches in the *-batch modes).")
    ] = 0,
    batch: Annotated[int, typer.Option(help="Tasks per message in the *-batch modes.")] = 100,
    payload_bytes: Annotated[int, typer.Option(help="Approximate payload size.")] = 16,
    max_backlog: Annotated[
        int,
        typer.Option(
            help="Tasks a client process may have created and not seen completed before its producers"
            " wait (0: 4x --concurrency): small enough that creates keep pace with completions (a"
            " steady state), so the CPU per cycle is not that of a growing queue."
        ),
    ] = 0,
    count: Annotated[int, typer.Option(help="Stop after N acknowledged cycles (0: use --duration).")] = 0,
    duration: Annotated[float, typer.Option(help="Measurement window in seconds.")] = 10.0,
    warmup: Annotated[float, typer.Option(help="Unmeasured warm-up in seconds.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure acknowledged full cycles/s (create → claim → result) through the SDK."""
    from codeq.cli.bench import MODES, SpawnOptions, Target, emit, plan_for, spawned_server

    if mode not in MODES or fsync not in ("on", "off") or shards < 1 or clients < 1 or max_backlog < 0:
        print(
            f"codeq bench: --mode must be one of {', '.join(MODES)}; --fsync on|off;"
            " --shards and --clients >= 1, --max-backlog >= 0",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    if concurrency <= 0:
        concurrency = 4 * batch if mode.endswith("batch") else 64
    if max_backlog == 0:
        max_backlog = 4 * concurrency
    knobs: dict[str, object] = {
        "producer_token": producer_token, "worker_token": worker_token, "producers": producers,
        "concurrency": concurrency, "batch": batch if mode.endswith("batch") else 1,
        "payload_bytes": payload_bytes, "count": count, "duration": duration, "warmup": warmup,
        "max_backlog": max_backlog,
    }  # fmt: skip
    options = SpawnOptions(fsync == "on", shards, shard_processes) if spawn else None
    if options is not None:
        with spawned_server(options) as target:
            result = _bench_run(plan_for(mode, target, **knobs), options, clients, as_json)
    else:
        target = Target(url.rstrip("/"), producer_addr, worker_addr)
        result = _bench_run(plan_for(mode, target, **knobs), None, clients, as_json)
    emit(result, as_json)


def _bench_run(
    plan: LoadPlan, options: SpawnOptions | None, clients: int, as_json: bool
) -> dict[str, object]:
    """With --duration: one window over every client process, the server watched from here."""
    from codeq.cli.bench import report, run_load
    from codeq.cli.bench_fleet import run_fleet

    if plan.count:
        return report(plan, run_load(plan, show_progress=not as_json), options)
    tally, spend = run_fleet(plan, clients)
    return report(plan, tally, options, spend, clients)


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def worker(ctx: typer.Context) -> None:
    """Run the handlers of a Worker in APP (module:attribute); `codeq worker --help` lists the flags."""
    from codeq.cli.worker import exit_now
    from codeq.cli.worker import main as worker_main

    exit_now(worker_main(list(ctx.args)))


def _add_remote_commands() -> None:
    """The operator's commands, built on the SDK (spec 04 §5)."""
    import codeq.cli.worker_reports  # noqa: F401 — registers task complete/fail/abandon/heartbeat
    from codeq.cli.admin import dlq_app, topic_app
    from codeq.cli.cluster import cluster_app
    from codeq.cli.remote import queue_app, task_app
    from codeq.cli.schedule import schedule_app

    cli.add_typer(task_app, name="task")
    cli.add_typer(queue_app, name="queue")
    cli.add_typer(dlq_app, name="dlq")
    cli.add_typer(topic_app, name="topic")
    cli.add_typer(schedule_app, name="schedule")
    cli.add_typer(cluster_app, name="cluster")


_add_remote_commands()


@cli.command()
def backup(
    dest: Annotated[str, typer.Argument(help="Directory on the SERVER's disk (made absolute here).")],
    url: Annotated[str, typer.Option("--url", envvar="CODEQ_BASE_URL")] = "http://localhost:8080",
    token: Annotated[
        str | None, typer.Option("--token", help="Admin token (default: env CODEQ_PRODUCER_TOKEN).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Have the running server write a consistent checkpoint of every shard to DEST while it serves."""
    import os

    from codeq.cli.backup import backup as run_backup
    from codeq.cli.output import token_for

    run_backup(url, token_for(token, "producer"), os.path.abspath(dest), as_json)


@cli.command()
def restore(
    source: Annotated[str, typer.Argument(help="A directory written by `codeq backup`.")],
    data: Annotated[str, typer.Option("--data", help="New data directory to create.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Prepare a data directory from a backup (the server must not be running on it)."""
    from codeq.cli.backup import restore as run_restore

    run_restore(source, data, as_json)


@cli.command()
def reshard(
    source: Annotated[str, typer.Option("--from", help="The STOPPED node's data directory (only read).")],
    target: Annotated[str, typer.Option("--to", help="New (absent or empty) data directory to write.")],
    shards: Annotated[int, typer.Option("--shards", help="Number of shards to write (numShards).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rewrite a stopped node's data into SHARDS shards in a new directory, then check that
    every task, result and index entry arrived (count and checksum, printed)."""
    from codeq.cli.migrate import reshard as run_reshard

    run_reshard(source, target, shards, as_json)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
