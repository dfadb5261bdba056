"""Producer and worker use cases on tasks: create, claim, heartbeat, abandon, nack, read."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from codeq.auth.principal import (
    SCOPE_ABANDON,
    SCOPE_CLAIM,
    SCOPE_HEARTBEAT,
    SCOPE_NACK,
    Principal,
)
from codeq.core.clock import Clock
from codeq.core.errors import (
    FIELD,
    CodeqError,
    InvalidInput,
    NotLeader,
    PayloadTooLarge,
    TaskCancelled,
    Unavailable,
)
from codeq.core.model import Status, Task
from codeq.core.names import command_key, validate_command, validate_idempotency_key
from codeq.core.ranges import is_priority, priority_range
from codeq.core.trace import stored_context
from codeq.engine import commands as c
from codeq.engine.outcomes import Claimed, Created
from codeq.engine.shards import new_task_id, shard_of
from codeq.service.background import BackgroundTasks
from codeq.service.callback_hosts import CallbackHosts
from codeq.service.idempotency import replay_elsewhere
from codeq.service.node import Node, ShardHandle, refused_everywhere, submit_batch
from codeq.service.policy import Policy
from codeq.service.ratelimit import PRODUCER, WORKER, RateLimiter

MAX_CLAIM_COMMANDS = 100  # commands one claim may name (each is a queue to look at)


@dataclass(slots=True)
class NewTask:
    """A create request after JSON decoding; `payload` is the raw JSON text of the value."""

    command: str
    payload: str
    priority: int = 0
    webhook: str = ""
    max_attempts: int | None = None
    idempotency_key: str = ""
    run_at_ms: int | None = None
    delay_seconds: int | None = None
    trace_parent: str = ""  # the producer's W3C context, where the wire carries one (gRPC)
    trace_state: str = ""


class TaskService:
    def __init__(
        self,
        node: Node,
        clock: Clock,
        policy: Policy,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.policy = policy
        self.limiter = limiter if limiter is not None else RateLimiter({}, clock)
        self._rng = rng or random.Random()
        self._background = BackgroundTasks()
        # Set by the composition root: refuses webhook hosts codeq must not call.
        self.callback_hosts: CallbackHosts | None = None

    async def drain(self) -> None:
        """Wait for the releases of abandoned claims still being submitted (before stores close)."""
        await self._background.join()

    # -- producers -----------------------------------------------------------------------

    async def create(self, principal: Principal, spec: NewTask) -> tuple[Task, bool]:
        """Create one task; returns it and whether it was an idempotent replay."""
        self.limiter.check(principal, PRODUCER, "create_task")
        command = self._create_command(principal, spec, self.clock.now_ms(), self.node.led_shards())
        moved = await replay_elsewhere(self.node, command.tenant, command.idempotency_key, command.now_ms)
        if moved is not None:
            return moved, True
        outcome = await self.node.shard_for(command.task_id).submit(command)
        return outcome.task, outcome.replay

    async def create_many(
        self, principal: Principal, specs: list[NewTask | CodeqError]
    ) -> list[tuple[Task, bool] | CodeqError]:
        """Create a batch: one atomic apply per shard; every item gets its own outcome."""
        self._check_batch_size(len(specs))
        self.limiter.check(principal, PRODUCER, "create_task")  # one token per request
        now_ms = self.clock.now_ms()
        results: list[tuple[Task, bool] | CodeqError] = [InvalidInput("invalid body")] * len(specs)
        commands: list[tuple[int, c.Create]] = []
        prefer = self.node.led_shards()  # once per request, not per item
        for position, spec in enumerate(specs):
            try:
                if isinstance(spec, CodeqError):
                    raise spec
                commands.append((position, self._create_command(principal, spec, now_ms, prefer)))
            except CodeqError as exc:
                results[position] = exc
        replays = await asyncio.gather(
            *(replay_elsewhere(self.node, cmd.tenant, cmd.idempotency_key, now_ms) for _, cmd in commands)
        )
        per_shard: dict[int, list[tuple[int, c.Create]]] = {}
        for (position, command), moved in zip(commands, replays, strict=True):
            if moved is not None:
                results[position] = (moved, True)
                continue
            shard = shard_of(command.task_id, len(self.node.shards))
            per_shard.setdefault(shard, []).append((position, command))
        refused_everywhere(
            await asyncio.gather(
                *(self._create_on_shard(n, items, results) for n, items in per_shard.items())
            )
        )
        return results

    async def _create_on_shard(
        self, shard: int, items: list[tuple[int, c.Create]], results: list[tuple[Task, bool] | CodeqError]
    ) -> NotLeader | None:
        return await submit_batch(self.node.shards[shard], items, results, _created_of)

    def _create_command(
        self, principal: Principal, spec: NewTask, now_ms: int, prefer: frozenset[int]
    ) -> c.Create:
        policy = self.policy
        command = validate_command(spec.command)
        principal.require_produce(command)
        if len(spec.payload) > policy.max_payload_bytes:
            raise PayloadTooLarge(f"payload exceeds {policy.max_payload_bytes} bytes", field="payload")
        if not is_priority(spec.priority):
            raise InvalidInput(f"invalid 'priority' (must be {priority_range()})", field="priority")
        _check_url(spec.webhook, "invalid webhook url", "webhook")
        if spec.webhook and self.callback_hosts is not None:
            self.callback_hosts.check_url(spec.webhook, "webhook")
        max_attempts = spec.max_attempts or 0
        if max_attempts <= 0:
            max_attempts = policy.max_attempts_default
        elif max_attempts > policy.max_attempts:
            raise InvalidInput(f"invalid '{FIELD}' (at most {policy.max_attempts})", field="max_attempts")
        key = validate_idempotency_key(spec.idempotency_key)
        trace_parent, trace_state = stored_context((spec.trace_parent, spec.trace_state))
        return c.Create(
            now_ms=now_ms,
            task_id=new_task_id(
                len(self.node.shards),
                tenant=principal.tenant,
                idempotency_key=key,
                prefer=prefer,
            ),
            tenant=principal.tenant,
            command=command,
            payload=spec.payload,
            priority=spec.priority,
            webhook=spec.webhook,
            max_attempts=max_attempts,
            visible_ms=self._visible_ms(spec, now_ms),
            idempotency_key=key,
            trace_parent=trace_parent,
            trace_state=trace_state,
        )

    def _visible_ms(self, spec: NewTask, now_ms: int) -> int:
        limit_ms = self.policy.max_delay_seconds * 1000
        if spec.run_at_ms is not None:
            if spec.run_at_ms - now_ms > limit_ms:
                raise InvalidInput(f"invalid '{FIELD}' (too far in the future)", field="run_at")
            return spec.run_at_ms if spec.run_at_ms > now_ms else 0
        delay = spec.delay_seconds or 0
        if delay < 0:
            raise InvalidInput(f"invalid '{FIELD}' (must be >= 0)", field="delay_seconds")
        if delay * 1000 > limit_ms:
            raise InvalidInput(
                f"invalid '{FIELD}' (at most {self.policy.max_delay_seconds})", field="delay_seconds"
            )
        return now_ms + delay * 1000 if delay > 0 else 0

    def _check_batch_size(self, size: int) -> None:
        if size == 0:
            raise InvalidInput("invalid body")
        if size > self.policy.max_batch_size:
            raise InvalidInput(f"batch size exceeds maximum of {self.policy.max_batch_size}")

    # -- workers -------------------------------------------------------------------------

    async def claim(
        self,
        principal: Principal,
        commands: list[str] | None,
        lease_seconds: int | None = None,
        wait_seconds: int = 0,
        count: int = 1,
    ) -> list[Task]:
        """Claim up to `count` tasks; with `wait_seconds`, wait until one is ready."""
        principal.require_scope(SCOPE_CLAIM)
        self.limiter.check(principal, WORKER, "claim")
        if commands is not None and len(commands) > MAX_CLAIM_COMMANDS:
            raise InvalidInput(f"too many commands (at most {MAX_CLAIM_COMMANDS})", field="commands")
        names = principal.worker_commands(commands)
        for name in names or ():
            validate_command(name)
        lease_ms = self._lease_seconds(lease_seconds, "lease_seconds") * 1000
        wait = min(max(wait_seconds, 0), self.policy.max_claim_wait_seconds)
        tasks = await self._claim_once(principal, names, lease_ms, count)
        if tasks or wait == 0:
            return tasks  # a ready task needs no waiter; the loop below claims again after making one
        keys = None if names is None else {command_key(name) for name in names}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            waiter = self.node.waiters.claim_waiter(principal.tenant, keys, count)
            try:
                tasks = await self._claim_once(principal, names, lease_ms, count)
                remaining = deadline - loop.time()
                if tasks or remaining <= 0 or self.node.waiters.closing:
                    return tasks
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                self.node.waiters.discard_claim(waiter, principal.tenant, keys)

    async def _claim_once(
        self, principal: Principal, names: list[str] | None, lease_ms: int, count: int
    ) -> list[Task]:
        claimed: list[Task] = []
        elsewhere: NotLeader | Unavailable | None = None
        for shard in self.node.claim_order(principal.tenant, names, self.clock.now_ms()):
            if claimed and not self.node.is_local(shard):
                continue  # tasks in hand are not topped up from another process (ADR 0009)
            if not shard.may_have_ready(principal.tenant, names, self.clock.now_ms()):
                continue
            command = c.Claim(
                now_ms=self.clock.now_ms(),
                tenant=principal.tenant,
                worker_id=principal.subject,
                commands=names,
                lease_ms=lease_ms,
                count=count - len(claimed),
            )
            try:
                outcome = await self._submit_claim(shard, command)
            except (NotLeader, Unavailable) as exc:
                # Raft with several shards: claim where this node leads; send the worker to
                # another shard's leader only when nothing could be claimed here. A shard
                # process gone away (ADR 0009) must not lose the tasks claimed before it.
                elsewhere = exc
                continue
            claimed.extend(outcome.tasks)
            if len(claimed) >= count:
                break
        if not claimed and elsewhere is not None:
            raise elsewhere
        return claimed

    def owner_elsewhere(self, task_id: str) -> int | None:
        """The shard of `task_id` when another process of this node owns it (a process per
        shard, ADR 0009); None when this process does."""
        shard = self.node.shard_for(task_id)
        return None if self.node.is_local(shard) else shard.number

    async def _submit_claim(self, shard: ShardHandle, command: c.Claim) -> Claimed:
        """Claim; if the caller goes away before the answer, put the tasks back undelivered.

        The submit runs as a task of its own so that cancelling the caller does not cancel
        it; the caller waits on a plain future the task's end resolves (what `shield` does,
        with one future and one callback instead of two of each)."""
        loop = asyncio.get_running_loop()
        submitted = loop.create_task(shard.submit(command))
        answered: asyncio.Future[None] = loop.create_future()
        submitted.add_done_callback(partial(_answer, answered))
        try:
            await answered
        except asyncio.CancelledError:
            submitted.add_done_callback(lambda done: self._release(shard, command, done))
            raise
        return submitted.result()

    def _release(self, shard: ShardHandle, claim: c.Claim, done: asyncio.Future[Claimed]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        for task in done.result().tasks:
            release = c.Abandon(
                now_ms=self.clock.now_ms(),
                tenant=claim.tenant,
                worker_id=claim.worker_id,
                task_id=task.id,
                lease_token=task.lease_epoch,
            )
            self._background.add(asyncio.ensure_future(shard.submit(release)))

    def _lease_seconds(self, seconds: int | None, name: str) -> int:
        if seconds is None or seconds <= 0:
            return self.policy.default_lease_seconds
        if seconds > self.policy.max_lease_seconds:
            raise InvalidInput(f"invalid '{FIELD}' (at most {self.policy.max_lease_seconds})", field=name)
        return seconds

    async def heartbeat(
        self, principal: Principal, task_id: str, extend_seconds: int | None, lease_token: int = 0
    ) -> Task:
        """Extend the lease; a `lease_token` (0: none) must name the lease still held."""
        principal.require_scope(SCOPE_HEARTBEAT)
        extend_ms = self._lease_seconds(extend_seconds, "extend_seconds") * 1000
        command = c.Heartbeat(
            now_ms=self.clock.now_ms(),
            tenant=principal.tenant,
            worker_id=principal.subject,
            task_id=task_id,
            extend_ms=extend_ms,
            lease_token=lease_token,
        )
        outcome = await self.node.shard_for(task_id).submit(command)
        return _unless_cancelled(outcome.task)

    async def abandon(self, principal: Principal, task_id: str, lease_token: int = 0) -> None:
        principal.require_scope(SCOPE_ABANDON)
        command = c.Abandon(
            now_ms=self.clock.now_ms(),
            tenant=principal.tenant,
            worker_id=principal.subject,
            task_id=task_id,
            lease_token=lease_token,
        )
        _unless_cancelled((await self.node.shard_for(task_id).submit(command)).task)

    async def nack(
        self,
        principal: Principal,
        task_id: str,
        delay_seconds: int | None,
        reason: str = "",
        lease_token: int = 0,
    ) -> tuple[int, bool]:
        """Retry later. No delay: the backoff policy decides; an explicit 0 means now (spec 01 gap 2).

        An explicit delay is capped at `backoffMaxSeconds`, as the backoff is (spec 02 nack):
        the answer's `delaySeconds` is the delay applied.
        """
        principal.require_scope(SCOPE_NACK)
        if delay_seconds is not None and delay_seconds < 0:
            raise InvalidInput(f"invalid '{FIELD}' (must be >= 0)", field="delay_seconds")
        if delay_seconds is not None:
            delay_seconds = min(delay_seconds, self.policy.backoff_max_seconds)
        command = c.Nack(
            now_ms=self.clock.now_ms(),
            tenant=principal.tenant,
            worker_id=principal.subject,
            task_id=task_id,
            delay_ms=None if delay_seconds is None else delay_seconds * 1000,
            reason=reason[:1024],
            jitter=self._rng.random(),
            lease_token=lease_token,
        )
        outcome = await self.node.shard_for(task_id).submit(command)
        if outcome.cancelled:
            raise TaskCancelled()
        return outcome.delay_seconds, outcome.dead_lettered

    # -- reads ---------------------------------------------------------------------------

    async def get(self, principal: Principal, task_id: str) -> Task:
        return await self.node.shard_for(task_id).find_task(task_id, principal.tenant)


def _check_url(url: str, message: str, field: str) -> None:
    if not url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput(message, field=field) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(message, field=field)


def _answer(answered: asyncio.Future[None], done: asyncio.Future[Claimed]) -> None:
    if not answered.done():  # cancelled when its waiter went away
        answered.set_result(None)


def _unless_cancelled(task: Task) -> Task:
    """A worker's call on a task cancelled while it held it finished the task: say so (issue 14)."""
    if task.status is Status.CANCELLED:
        raise TaskCancelled()
    return task


def _created_of(outcome: Created) -> tuple[Task, bool]:
    return outcome.task, outcome.replay
