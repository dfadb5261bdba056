"""`codeq bench --clients N`: the load from N processes over one shared window, and what the
server spent on it: CPU seconds per server process and the commands its shard processes
forwarded to each other (read from `/metrics`), so the same command shows the scaling curve
on a bigger machine (ADR 0009)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from codeq.cli.bench_load import Load, LoadPlan, Tally, run_async, server_cpu_seconds, server_processes
from codeq.cli.bench_sockets import connections_by_process, port_of
from codeq.h1 import H1Error, fetch

COMMANDS_METRIC = "codeq_shard_commands_total"
START_MARGIN_SECONDS = 1.5  # client processes start (import, connect) before the window opens


@dataclass(slots=True)
class ServerSpend:
    """What the server spent inside the window."""

    cpu_by_process: dict[str, float] = field(default_factory=dict)
    forwarded: float | None = None  # commands sent to another shard process
    commands: float | None = None  # every command the shard processes submitted
    # Established connections per process and port (http, producer, worker) at the window's start.
    connections: dict[str, dict[str, int]] = field(default_factory=dict)


def run_fleet(plan: LoadPlan, clients: int) -> tuple[Tally, ServerSpend]:
    """Run `plan` from `clients` processes (1: this one) with one window, watched from here."""
    start_at = time.time() + max(plan.warmup, START_MARGIN_SECONDS if clients > 1 else plan.warmup)
    shared = dataclasses.replace(plan, start_at=start_at, server_pid=0)
    watch = ServerWatch(plan.server_pid, plan.http_url, start_at, plan.duration)
    watch.ports = _ports(plan)
    watch.start()
    if clients == 1:
        tally = _run_one(shared)
    else:
        context = multiprocessing.get_context("spawn")  # never fork a process with a loop in it
        with ProcessPoolExecutor(clients, mp_context=context) as pool:
            tallies = list(pool.map(_run_one, [shared] * clients))
        tally = merge(tallies)
    watch.join(plan.duration + 30)
    tally.server_cpu_s = sum(watch.spend.cpu_by_process.values()) if watch.spend.cpu_by_process else None
    return tally, watch.spend


def _ports(plan: LoadPlan) -> dict[str, int]:
    named = {"http": plan.http_url, "producer": plan.producer_url, "worker": plan.worker_url}
    ports: dict[str, int] = {}
    for name, address in named.items():
        port = port_of(address)
        if port is not None and port not in ports.values():  # in HTTP modes all three are one port
            ports[name] = port
    return ports


def _run_one(plan: LoadPlan) -> Tally:
    return run_async(Load(plan).run())


def merge(tallies: list[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.created += tally.created
        total.claimed += tally.claimed
        total.cycles += tally.cycles
        total.errors += tally.errors
        total.create_ms += tally.create_ms
        total.cycle_ms += tally.cycle_ms
        total.client_cpu_s += tally.client_cpu_s
        total.elapsed = max(total.elapsed, tally.elapsed)
    return total


class ServerWatch(threading.Thread):
    """Samples the server at the window's start and end."""

    def __init__(self, pid: int, http_url: str, start_at: float, duration: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.http_url = http_url
        self.start_at = start_at
        self.duration = duration
        self.spend = ServerSpend()
        self.ports: dict[str, int] = {}

    def run(self) -> None:
        time.sleep(max(self.start_at - time.time(), 0.0))
        cpu, routes = server_cpu_seconds(self.pid), self._routes()
        self.spend.connections = connections_by_process(server_processes(self.pid), self.ports)
        time.sleep(max(self.start_at + self.duration - time.time(), 0.0))
        cpu_end, routes_end = server_cpu_seconds(self.pid), self._routes()
        self.spend.cpu_by_process = {name: cpu_end[name] - cpu[name] for name in cpu_end if name in cpu}
        if routes is not None and routes_end is not None:
            local = routes_end.get("local", 0.0) - routes.get("local", 0.0)
            self.spend.forwarded = routes_end.get("forwarded", 0.0) - routes.get("forwarded", 0.0)
            self.spend.commands = local + self.spend.forwarded

    def _routes(self) -> dict[str, float] | None:
        """`codeq_shard_commands_total` by route, summed over shard processes (None: absent).
        The page is at most a second old: the window is long against that."""
        try:
            page = fetch(f"{self.http_url}/metrics", timeout=5).body.decode()
        except H1Error:
            return None
        return commands_by_route(page)


def commands_by_route(page: str) -> dict[str, float] | None:
    found: dict[str, float] = {}
    for line in page.splitlines():
        if not line.startswith(COMMANDS_METRIC + "{"):
            continue
        labels, _, value = line.rpartition(" ")
        route = labels.partition('route="')[2].partition('"')[0]
        found[route] = found.get(route, 0.0) + float(value)
    return found or None
