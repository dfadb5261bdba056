#!/usr/bin/env python3
"""Closed-loop HTTP/1.1 load generator for the codeq task API.

Standalone (stdlib + msgspec; uvloop when importable). One keep-alive connection per
virtual user, requests pre-encoded as bytes, responses framed by Content-Length
(chunked bodies and 204/304 without a body are handled too).

Modes:
  create  every user POSTs creates in a closed loop; ops = 202 responses
  claim   prefill --prefill tasks (untimed), then users claim; ops = 200 claims
  cycle   create -> claim -> result per user; ops = result POSTs answered 200

Only ops that complete inside the measurement window (after --warmup, for --duration
seconds) are counted. Only loopback targets are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, urlsplit

import msgspec


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


LOOP_FACTORY = _uvloop_factory()
PRODUCER_TOKEN = "dev-producer"
WORKER_TOKEN = "dev-worker"
API = "/v1/codeq"
LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
EXPECTED = {"create": (202,), "claim": (200, 204), "result": (200,)}
MODES = ("create", "claim", "cycle")
NO_BODY_STATUSES = (204, 304)
STOP_GRACE_S = 2.0  # after the window: time left to in-flight requests before cancelling


# --------------------------------------------------------------------------- HTTP


class HttpError(Exception):
    """Malformed or unsupported response framing."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    close: bool  # server asked to close the connection after this response


def _chunked_body(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a complete chunked body starting at ``start``; None if incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # skip (empty) trailers
            return (bytes(out), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        out += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def _content_length(head: bytes) -> int | None:
    i = head.find(b"\r\ncontent-length:")
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 2)
    return int(head[i + 17 : j if j >= 0 else len(head)])


def parse_response(buf: bytearray) -> tuple[Response, int] | None:
    """Parse one response from the front of ``buf``: (response, bytes consumed) or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1."):
        raise HttpError(f"bad status line: {head[:40]!r}")
    status = int(head[9:12])
    close = b"\r\nconnection: close" in head
    length = _content_length(head)
    if length is None and (status in NO_BODY_STATUSES or status < 200):
        length = 0
    if length is not None:
        total = end + 4 + length
        if len(buf) < total:
            return None
        return Response(status, bytes(buf[end + 4 : total]), close), total
    if b"\r\ntransfer-encoding: chunked" in head:
        chunked = _chunked_body(buf, end + 4)
        if chunked is None:
            return None
        return Response(status, chunked[0], close), chunked[1]
    raise HttpError("response without Content-Length or chunked encoding")


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buf += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = parse_response(self._buf)
        except (HttpError, ValueError) as exc:
            waiter.set_exception(HttpError(str(exc)))
            self.close()
            return
        if parsed is not None:
            resp, used = parsed
            del self._buf[:used]
            self._waiter = None
            if resp.close:
                self.close()
            waiter.set_result(resp)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("connection lost"))

    def request(self, data: bytes) -> asyncio.Future[Response]:
        """Write a fully encoded request; the future resolves to its response."""
        if self.closed or self._transport is None:
            raise ConnectionError("connection closed")
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(data)
        return waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


async def connect(host: str, port: int) -> HttpConn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(HttpConn, host, port)
    return proto


# --------------------------------------------------------------------------- requests


def encode_request(host_header: str, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass(frozen=True)
class Requests:
    """Pre-encoded request bytes for the three routes."""

    create: bytes
    claim: bytes
    result_prefix: bytes
    result_suffix: bytes

    @classmethod
    def build(cls, host_header: str, command: str, lease: int, wait: int) -> Requests:
        enc = msgspec.json.encode
        create = enc({"command": command, "payload": {"n": 1}})
        claim_doc: dict[str, Any] = {"commands": [command], "leaseSeconds": lease}
        if wait > 0:
            claim_doc["waitSeconds"] = wait
        result = encode_request(host_header, f"{API}/tasks/ID/result", WORKER_TOKEN, _RESULT_BODY)
        prefix, suffix = result.split(b"/ID/", 1)
        return cls(
            create=encode_request(host_header, f"{API}/tasks", PRODUCER_TOKEN, create),
            claim=encode_request(host_header, f"{API}/tasks/claim", WORKER_TOKEN, enc(claim_doc)),
            result_prefix=prefix + b"/",
            result_suffix=b"/" + suffix,
        )

    def result(self, task_id: str) -> bytes:
        return self.result_prefix + quote(task_id, safe="").encode("ascii") + self.result_suffix


_RESULT_BODY = b'{"status":"COMPLETED","result":{"ok":true}}'


class _TaskId(msgspec.Struct):
    id: str


_decode_task = msgspec.json.Decoder(_TaskId).decode


# --------------------------------------------------------------------------- recording


@dataclass
class Recorder:
    """Counts and latencies; only records while ``active`` (the measurement window)."""

    active: bool = False
    stopping: bool = False
    ops: int = 0
    requests: int = 0
    empty_claims: int = 0
    latency_ns: dict[str, list[int]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    exhausted: asyncio.Event = field(default_factory=asyncio.Event)

    def sample(self, kind: str, elapsed_ns: int, status: int) -> None:
        if not self.active:
            return
        self.requests += 1
        self.latency_ns.setdefault(kind, []).append(elapsed_ns)
        if status not in EXPECTED[kind]:
            self.errors[f"{kind} {status}"] += 1
        elif status == 204:
            self.empty_claims += 1

    def error(self, kind: str, what: str) -> None:
        if self.active:
            self.errors[f"{kind} {what}"] += 1

    def op(self, cycle_ns: int | None = None) -> None:
        if not self.active:
            return
        self.ops += 1
        if cycle_ns is not None:
            self.latency_ns.setdefault("cycle", []).append(cycle_ns)


# --------------------------------------------------------------------------- virtual users


class VirtualUser:
    """A closed-loop user owning one connection (reconnects on failure)."""

    def __init__(self, target: tuple[str, int], reqs: Requests, rec: Recorder) -> None:
        self.target = target
        self.reqs = reqs
        self.rec = rec
        self.conn: HttpConn | None = None

    async def send(self, kind: str, data: bytes) -> Response | None:
        """One timed request; None on a transport failure (already recorded)."""
        t0 = time.perf_counter_ns()
        try:
            if self.conn is None or self.conn.closed:
                self.conn = await connect(*self.target)
            resp = await self.conn.request(data)
        except (OSError, HttpError) as exc:
            self.rec.error(kind, "conn" if isinstance(exc, OSError) else "http")
            await self._drop()
            return None
        self.rec.sample(kind, time.perf_counter_ns() - t0, resp.status)
        return resp

    async def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        await asyncio.sleep(0.05)  # avoid a hot loop against a dead server

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    async def run_create(self) -> None:
        while not self.rec.stopping:
            resp = await self.send("create", self.reqs.create)
            if resp is not None and resp.status == 202:
                self.rec.op()

    async def run_claim(self) -> None:
        while not self.rec.stopping:
            resp = await self.send("claim", self.reqs.claim)
            if resp is None:
                continue
            if resp.status == 200:
                self.rec.op()
            elif resp.status == 204:
                self.rec.exhausted.set()  # queue drained: the window ends here
                return

    async def run_cycle(self) -> None:
        while not self.rec.stopping:
            t0 = time.perf_counter_ns()
            resp = await self.send("create", self.reqs.create)
            if resp is None or resp.status != 202:
                continue
            task_id = await self._claim_one()
            if task_id is None:
                continue
            resp = await self.send("result", self.reqs.result(task_id))
            if resp is not None and resp.status == 200:
                self.rec.op(time.perf_counter_ns() - t0)

    async def _claim_one(self) -> str | None:
        """Claim until a task comes back (any user's task is fine)."""
        while not self.rec.stopping:
            resp = await self.send("claim", self.reqs.claim)
            if resp is None or resp.status not in (200, 204):
                return None
            if resp.status == 200:
                try:
                    return _decode_task(resp.body).id
                except msgspec.DecodeError:
                    self.rec.error("claim", "bad-json")
                    return None
            await asyncio.sleep(0.001)
        return None


# --------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class LoadConfig:
    url: str
    mode: str = "cycle"
    users: int = 32
    duration: float = 10.0
    warmup: float = 2.0
    prefill: int = 100_000
    claim_wait: int = 0
    lease: int = 300
    command: str = "bench"
    prefill_timeout: float = 120.0


def parse_target(url: str) -> tuple[str, int, str]:
    """(connect host, port, Host header) for a loopback http:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(f"only http:// loopback URLs are allowed, got {url!r}")
    port = parts.port or 80
    host = LOOPBACK[parts.hostname]
    return host, port, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Prefill:
    """Untimed creates before a claim run; gives up after too many failures."""

    wanted: int
    created: int = 0
    failed: int = 0
    started: int = 0

    @property
    def max_failures(self) -> int:
        return max(100, self.wanted // 100)

    def more(self) -> bool:
        return self.started < self.wanted and self.failed <= self.max_failures

    async def worker(self, user: VirtualUser) -> None:
        try:
            while self.more():
                self.started += 1
                resp = await user.send("create", user.reqs.create)
                if resp is not None and resp.status == 202:
                    self.created += 1
                else:
                    self.started -= 1
                    self.failed += 1
        finally:
            user.close()


async def prefill(cfg: LoadConfig, target: tuple[str, int], reqs: Requests) -> dict[str, Any]:
    """Create ``cfg.prefill`` tasks, untimed; returns a report for the result document."""
    rec = Recorder(active=True)
    job = Prefill(cfg.prefill)
    t0 = time.perf_counter()
    users = [VirtualUser(target, reqs, rec) for _ in range(max(cfg.users, 16))]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(job.worker(u) for u in users)), cfg.prefill_timeout)
    report: dict[str, Any] = {"prefilled": job.created, "prefill_s": round(time.perf_counter() - t0, 3)}
    if rec.errors:
        report["prefill_errors"] = dict(rec.errors)
    return report


WindowHook = Callable[[str], None]


async def _measure(cfg: LoadConfig, rec: Recorder, hook: WindowHook | None) -> tuple[float, float]:
    """Warm up, open the window, close it; returns (seconds, client CPU seconds)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(rec.exhausted.wait(), cfg.warmup)
    if hook:
        hook("start")
    rec.active = True
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(rec.exhausted.wait(), cfg.duration)
    rec.active = False
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if hook:
        hook("end")
    return elapsed, cpu


async def _stop_users(rec: Recorder, tasks: list[asyncio.Task[None]], users: list[VirtualUser]) -> list[str]:
    """Let users finish their request (bounded), then cancel; returns crash reasons."""
    rec.stopping = True
    _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
    for task in pending:
        task.cancel()
    for user in users:
        user.close()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return [repr(o) for o in outcomes if isinstance(o, Exception)]


async def run_load(cfg: LoadConfig, hook: WindowHook | None = None) -> dict[str, Any]:
    """Run one measurement and return the result document."""
    host, port, host_header = parse_target(cfg.url)
    reqs = Requests.build(host_header, cfg.command, cfg.lease, cfg.claim_wait)
    extra: dict[str, Any] = {}
    if cfg.mode == "claim":
        extra = await prefill(cfg, (host, port), reqs)
        if extra["prefilled"] == 0:
            raise RuntimeError(f"prefill created no task: {extra}")
    rec = Recorder()
    users = [VirtualUser((host, port), reqs, rec) for _ in range(cfg.users)]
    runner: dict[str, Callable[[VirtualUser], Coroutine[Any, Any, None]]] = {
        "create": VirtualUser.run_create,
        "claim": VirtualUser.run_claim,
        "cycle": VirtualUser.run_cycle,
    }
    gc.collect()
    gc.freeze()
    tasks = [asyncio.ensure_future(runner[cfg.mode](u)) for u in users]
    try:
        elapsed, cpu = await _measure(cfg, rec, hook)
    finally:
        crashes = await _stop_users(rec, tasks, users)
    if crashes:
        extra["user_crashes"] = crashes[:5]
    return summarize(cfg, rec, elapsed, cpu) | extra


# --------------------------------------------------------------------------- reporting


def percentile(sorted_ns: list[int], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_ns:
        return 0.0
    rank = min(len(sorted_ns), max(1, math.ceil(p / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1e6


def latency_summary(samples: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in ("create", "claim", "result", "cycle"):
        data = sorted(samples.get(kind, ()))
        if data:
            out[kind] = {
                "n": len(data),
                "p50": round(percentile(data, 50), 3),
                "p99": round(percentile(data, 99), 3),
                "max": round(data[-1] / 1e6, 3),
            }
    return out


def summarize(cfg: LoadConfig, rec: Recorder, elapsed: float, cpu: float) -> dict[str, Any]:
    secs = max(elapsed, 1e-9)
    doc: dict[str, Any] = {
        "mode": cfg.mode,
        "users": cfg.users,
        "window_s": round(elapsed, 3),
        "warmup_s": cfg.warmup,
        "ops": rec.ops,
        "ops_per_s": round(rec.ops / secs, 1),
        "requests": rec.requests,
        "requests_per_s": round(rec.requests / secs, 1),
        "errors": dict(sorted(rec.errors.items())),
        "empty_claims": rec.empty_claims,
        "latency_ms": latency_summary(rec.latency_ns),
        "client_cpu_pct": round(100 * cpu / secs, 1),
        "loop": "uvloop" if LOOP_FACTORY is not None else "asyncio",
    }
    if rec.exhausted.is_set():
        doc["queue_exhausted"] = True  # claim mode: window cut short at the first 204
    return doc


def format_text(doc: dict[str, Any]) -> str:
    lines = [
        f"mode={doc['mode']} users={doc['users']} window={doc['window_s']}s loop={doc['loop']}",
        f"ops={doc['ops']}  ops/s={doc['ops_per_s']}  requests/s={doc['requests_per_s']}"
        f"  client_cpu={doc['client_cpu_pct']}%",
        f"errors={doc['errors'] or 'none'}  empty_claims={doc['empty_claims']}",
    ]
    for kind, lat in doc["latency_ms"].items():
        lines.append(f"  {kind:<7} n={lat['n']:<8} p50={lat['p50']:.3f}ms p99={lat['p99']:.3f}ms")
    if "prefilled" in doc:
        lines.append(f"prefilled={doc['prefilled']} in {doc['prefill_s']}s {doc.get('prefill_errors', '')}")
    if doc.get("user_crashes"):
        lines.append(f"WARNING: virtual users crashed: {doc['user_crashes']}")
    if doc.get("queue_exhausted"):
        lines.append("WARNING: queue exhausted during the run; raise --prefill")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def add_load_args(parser: argparse.ArgumentParser) -> None:
    """Options shared with run_http.py."""
    parser.add_argument("--mode", choices=MODES, default="cycle")
    parser.add_argument("--users", type=int, default=32, help="virtual users = connections")
    parser.add_argument("--duration", type=float, default=10.0, help="measurement window, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up, s")
    parser.add_argument("--prefill", type=int, default=100_000, help="claim mode: tasks created first")
    parser.add_argument("--claim-wait", type=int, default=0, help="claim waitSeconds (long-poll)")
    parser.add_argument("--lease", type=int, default=300, help="claim leaseSeconds")
    parser.add_argument("--command", default="bench", help="task command name")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def config_from_args(args: argparse.Namespace, url: str) -> LoadConfig:
    if args.users < 1 or args.duration <= 0 or args.warmup < 0:
        raise ValueError("--users must be >= 1, --duration > 0, --warmup >= 0")
    return LoadConfig(
        url=url,
        mode=args.mode,
        users=args.users,
        duration=args.duration,
        warmup=args.warmup,
        prefill=args.prefill,
        claim_wait=args.claim_wait,
        lease=args.lease,
        command=args.command,
    )


async def _cancel_on_sigterm(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await coro


def run_async(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop if available. SIGINT -> KeyboardInterrupt, SIGTERM -> CancelledError."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
            return runner.run(_cancel_on_sigterm(coro))
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="loopback base URL")
    add_load_args(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args, args.url)
        parse_target(cfg.url)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        doc = run_async(run_load(cfg))
    except RuntimeError as exc:
        print(f"http_load: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("http_load: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(doc) if args.json else format_text(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
