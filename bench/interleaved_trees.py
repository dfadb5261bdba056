#!/usr/bin/env python3
"""`codeq bench --spawn` against several source trees, interleaved (A B C A B C ...), in one session.

Each tree is a directory holding the `codeq` package (`src` of this checkout, or an older
commit unpacked with `git archive <commit> src | tar -x -C /tmp/<name>`); every run uses
this virtualenv's interpreter and packages with `PYTHONPATH=<tree>`, so only the code
differs. Before each run the 1-minute load average is read: on a shared machine cycles/s
swings with the load and only the server CPU per cycle compares well, and only between
runs close in time. Prints one line per run and a median per tree.

  .venv/bin/python bench/interleaved_trees.py old=/tmp/old/src new=src \\
      [--mode http] [--rounds 3] [--duration 8] [--warmup 2] [--clients 1] [--json]

With `--client-tree src` every run's load (the bench and the SDK) comes from `src` and
only the spawned server from the tree, so a change to the SDK does not move the server's
figures (a cheaper load leaves the server more requests per wake-up, which lowers its CPU
per cycle by itself).

A tree may carry more bench arguments after a `|`, so one tree can run as several arms:

  .venv/bin/python bench/interleaved_trees.py "one=src|--shards 1" \\
      "two=src|--shards 2 --shard-processes" --mode grpc-batch --clients 4 --producers 8
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

# Read by `codeq bench --spawn`: the PYTHONPATH of the server it starts (see --client-tree).
SERVER_PATH = "CODEQ_BENCH_SERVER_PYTHONPATH"


def one_run(tree: str, extra: list[str], args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, "-m", "codeq.cli.main", "bench", "--spawn", "--mode", args.mode]
    command += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--json"]
    if args.clients > 1:  # named only when used: older trees' bench has no --clients
        command += ["--clients", str(args.clients)]
    if args.producers:
        command += ["--producers", str(args.producers)]
    command += extra
    env = {**os.environ, "PYTHONPATH": tree}
    if args.client_tree:  # one load for every tree: only the spawned server's code differs
        env = {**os.environ, "PYTHONPATH": args.client_tree, SERVER_PATH: tree}
    load = os.getloadavg()[0]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"load": round(load, 2), **result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs="+", help="name=path of a directory holding the codeq package")
    parser.add_argument("--mode", default="http")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--producers", type=int, default=0, help="0: the bench's default")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--client-tree",
        default="",
        help="run every tree's load with this tree's bench and SDK; the trees then differ in the server only",
    )
    args = parser.parse_args()
    trees = [_tree(spec) for spec in args.trees]
    runs: dict[str, list[dict[str, object]]] = {name: [] for name, _, _ in trees}
    for round_number in range(1, args.rounds + 1):
        for name, path, extra in trees:
            run = one_run(path, extra, args)
            runs[name].append(run)
            if not args.json:
                print(f"round {round_number} {name:>8} {_line(run)}", flush=True)
    medians = {
        name: statistics.median(float(str(r["server_cpu_us_per_cycle"])) for r in rs)
        for name, rs in runs.items()
    }
    if args.json:
        print(json.dumps({"mode": args.mode, "runs": runs, "median_server_us_per_cycle": medians}))
        return
    first = next(iter(medians.values()))
    for name, median in medians.items():
        print(f"{name:>8}: median server µs/cycle {median:.1f} ({median / first:.2f}x the first tree)")


def _tree(spec: str) -> tuple[str, str, list[str]]:
    """`name=path` or `name=path|more bench arguments` (e.g. `two=src|--shards 2 --shard-processes`)."""
    name, _, rest = spec.partition("=")
    path, _, extra = rest.partition("|")
    return name, path, shlex.split(extra)


def _line(run: dict[str, object]) -> str:
    line = (
        f"load {run['load']:>5} cycles/s {run['cycles_per_s']:>8} server µs/cycle"
        f" {run['server_cpu_us_per_cycle']:>6} client µs/cycle {run['client_cpu_us_per_cycle']:>6}"
        f" errors {run['errors']}"
    )
    by_process = run.get("server_cpu_us_per_cycle_by_process")
    if by_process:
        line += f" by process {by_process}"
    if run.get("forwarded_fraction") is not None:
        line += f" forwarded {run['forwarded_fraction']}"
    if run.get("connections_by_process"):
        line += f" connections {run['connections_by_process']}"
    return line


if __name__ == "__main__":
    main()
