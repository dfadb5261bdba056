"""The queue state machine: `apply(command)` changes the index and returns ops, outcome, events.

Every handler validates first and mutates after, so a rejected command leaves no trace.
Reads inside apply see the ops already staged by the same apply (`ApplyContext.read`), so a
batch can depend on its own earlier items. Events are returned, not delivered: whoever applies
hands the ops to durable storage first and only then lets anyone observe the events.
"""

from __future__ import annotations

import operator
import random
import sys
from typing import TypeVar

from codeq.core.errors import CodeqError, InvalidInput, NotFound
from codeq.core.model import Artifact, Location, ResultRecord, Status, Task
from codeq.core.names import command_key
from codeq.core.ranges import is_priority, priority_range
from codeq.core.topics import Topic
from codeq.engine import (
    cancel,
    claim,
    dlq,
    keys,
    leases,
    listing,
    outbox,
    records,
    retention,
    schedules,
    subscriptions,
    topics,
)
from codeq.engine import commands as c
from codeq.engine.context import ApplyContext, EngineConfig, Reader
from codeq.engine.index import Index
from codeq.engine.outcomes import (
    BatchApplied,
    Completed,
    Created,
    Event,
    Finished,
    LeaseExtended,
    Nacked,
    Outcome,
    Ready,
    Requeued,
    Swept,
    TaskEvent,
)

__all__ = ["Applied", "Engine", "EngineConfig", "Reader"]

OutcomeT = TypeVar("OutcomeT")
Ops = dict[bytes, bytes | None]
# What one apply returns: its writes, its outcome, and the events to deliver once the writes
# are durable.
Applied = tuple[Ops, OutcomeT, list[Event]]
_VALUE = operator.itemgetter(1)  # of a (key, value) pair


class Engine:
    def __init__(self, store: Reader, config: EngineConfig | None = None) -> None:
        self.store = store
        self.config = config or EngineConfig()
        self.index = Index()
        self.outbox = outbox.Outbox()
        self.subscriptions = subscriptions.Registry()
        self.throughput = listing.Throughput()
        self._ctx = ApplyContext(store, self.index, self.config)
        # The current apply's writes and events: the same objects as the context's.
        self._ops: Ops = self._ctx.ops
        self._events: list[Event] = self._ctx.events

    def recover(self, now_ms: int) -> int:
        """Rebuild the index from the live range and the DLQ counters; returns live tasks."""
        index = self.index = self._ctx.index = Index()
        # map/itemgetter: no Python frame per stored task on the way to `restore`
        stored = map(records.decode_placement, map(_VALUE, self.store.scan(keys.LIVE, keys.LIVE_END)))
        index.next_seq = index.restore(stored, now_ms) + 1
        index.settle()
        for key, raw in self.store.scan(keys.DLQ_COUNT, keys.DLQ_COUNT_END):
            index.dlq_counts[keys.split_dlq_count(key)] = keys.read_be8(raw)
        self.outbox.load(self.store.scan(keys.OUTBOX, keys.OUTBOX_END))
        self.subscriptions.load(self.store)
        return len(index.tasks)

    # -- the apply path ------------------------------------------------------------------

    def apply(self, command: object) -> Applied[Outcome]:
        """Apply one command; raises CodeqError (with nothing staged or raised) when it is
        rejected. Anything that is not a command is rejected as unknown."""
        ctx = self._ctx
        ops = self._ops = ctx.ops = {}
        events = self._events = ctx.events = []
        try:
            outcome = self._dispatch(command)
        except CodeqError:
            if ops:
                raise AssertionError("a rejected command staged writes") from None
            events.clear()
            raise
        return ops, outcome, events

    def _dispatch(self, command: object) -> Outcome:
        match command:
            case c.Create():
                return self._create(command)
            case c.Claim():
                return claim.claim(self._ctx, command)
            case c.Heartbeat():
                return self._heartbeat(command)
            case c.Abandon():
                return self._abandon(command)
            case c.Nack():
                return self._nack(command)
            case c.Complete():
                return self._complete(command)
            case c.Tick() | c.Cleanup():
                return self._sweep(command)
            case c.Batch():
                return self._batch(command)
            case c.Cancel():
                return cancel.cancel(self._ctx, command, self._finish_cancelled)
        return self._dispatch_tools(command)

    def _dispatch_tools(self, command: object) -> Outcome:
        """The topic catalog, schedules, operator tools, the callback outbox and subscriptions:
        each in its own module, each handler called as (context, command)."""
        ctx = self._ctx
        match command:
            case c.PutTopic():
                return topics.put(ctx, command)
            case c.DeleteTopic():
                return topics.delete(ctx, command)
            case c.PutSchedule() | c.DeleteSchedule() | c.ScheduleFired():
                return schedules.apply(ctx, command)
            case c.DlqRequeue() | c.DlqPurge():
                return _dlq_tool(ctx, command)
            case c.WebhookOutcome():
                return self.outbox.settle(ctx, command)
            case c.SubscriptionCreate():
                return self.subscriptions.create(ctx, command)
            case c.SubscriptionHeartbeat():
                return self.subscriptions.heartbeat(ctx, command)
            case c.SubscriptionDelete():
                return self.subscriptions.delete(ctx, command)
            case c.SubscriptionExpire():
                return self.subscriptions.expire(ctx, command)
        raise InvalidInput(f"unknown command {type(command).__name__}")

    def _sweep(self, command: c.Tick | c.Cleanup) -> Swept:
        if isinstance(command, c.Tick):
            return self._tick(command)
        return Swept(
            deleted=retention.expire_finished(self._ctx, command.before_ms, command.limit, command.tenant)
        )

    def _batch(self, command: c.Batch) -> BatchApplied:
        outcome = BatchApplied()
        for item in command.items:
            try:
                result = self._create(item) if isinstance(item, c.Create) else self._complete(item)
            except CodeqError as exc:
                outcome.items.append(exc)
            else:
                outcome.items.append(result)
        return outcome

    # -- reads ---------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        if key in self._ops:
            return self._ops[key]
        return self.store.get(key)

    def find_task(self, task_id: str, tenant: str) -> Task:
        """A task of `tenant` by id, read from the store; other tenants' tasks are
        `not found` (spec 02 gap 2)."""
        live = self.index.tasks.get(task_id)
        if live is not None:
            if live.queue.tenant != tenant:
                raise NotFound("not-found")
            return self._ctx.load(live)
        raw = self._get(keys.finished(task_id))
        task = records.decode_task(raw) if raw is not None else None
        if task is None or task.tenant != tenant:
            raise NotFound("not-found")
        return task

    def live_tasks(self, task_ids: list[str]) -> list[Task]:
        """The live tasks among `task_ids`, read from the store in one multi-get (listings)."""
        found = [live for task_id in task_ids if (live := self.index.tasks.get(task_id)) is not None]
        return self._ctx.load_many(found)

    def may_have_ready(self, tenant: str, commands: list[str] | None, now_ms: int) -> bool:
        """Whether a claim could find something here: lets callers skip a pointless apply."""
        index = self.index
        if index.delayed and index.delayed[0][0] <= now_ms:
            return True  # a promotion may make something ready
        if commands is None:
            return any(queue.ready for queue in index.by_tenant.get(tenant, {}).values())
        for name in commands:
            queue = index.queues.get((tenant, command_key(name)))
            if queue is not None and queue.ready:
                return True
        return False

    def find_topic(self, tenant: str, name: str) -> Topic | None:
        return topics.find(self._get, tenant, name)

    def find_result(self, task_id: str) -> ResultRecord | None:
        raw = self._get(keys.result(task_id))
        return records.decode_result(raw) if raw is not None else None

    def _leased_task(self, cmd: leases.LeaseCommand) -> Task:
        task = self.find_task(cmd.task_id, cmd.tenant)
        leases.check_held(task, cmd)
        return task

    # -- writes --------------------------------------------------------------------------

    def _put_live(self, task: Task) -> None:
        self._ops[keys.live(task.id)] = records.encode_task(task)

    def _create(self, cmd: c.Create) -> Created:
        replay = self._replay_of(cmd)
        if replay is not None:
            return Created(replay, replay=True)
        if not is_priority(cmd.priority):
            # The services refuse these first; the engine must too, since an apply that raised
            # anything but a CodeqError would stop every replica.
            raise InvalidInput(f"priority must be {priority_range()}", field="priority")
        task = Task(
            id=cmd.task_id,
            tenant=sys.intern(cmd.tenant),
            command=sys.intern(cmd.command),
            payload=cmd.payload,
            priority=cmd.priority,
            webhook=cmd.webhook,
            max_attempts=cmd.max_attempts,
            created_ms=cmd.now_ms,
            updated_ms=cmd.now_ms,
            visible_ms=cmd.visible_ms,
            seq=self.index.take_seq(),
            idempotency_key=cmd.idempotency_key,
            trace_parent=cmd.trace_parent,
            trace_state=cmd.trace_state,
        )
        if self.index.place(task, cmd.now_ms):
            self._events.append(Ready(task.tenant, command_key(task.command)))
        self._put_live(task)
        if cmd.idempotency_key:
            expires_ms = cmd.now_ms + self.config.idempotency_ttl_ms
            self._ops[keys.idempotency(cmd.tenant, cmd.idempotency_key)] = records.encode_idempotency(
                task.id, expires_ms
            )
            self._ops[keys.idempotency_expiry(expires_ms, cmd.tenant, cmd.idempotency_key)] = b""
        self._events.append(TaskEvent("created", task))
        return Created(task)

    def _replay_of(self, cmd: c.Create) -> Task | None:
        """The task an earlier create already made for this live idempotency key (or, when the
        same command is applied twice, for this still-live id)."""
        same = self.index.tasks.get(cmd.task_id)
        if same is not None and same.queue.tenant == cmd.tenant:
            return self._ctx.load(same)
        task_id = self._idempotent_task_id(cmd)
        if task_id:
            try:
                return self.find_task(task_id, cmd.tenant)
            except NotFound:
                return None
        return None

    def _idempotent_task_id(self, cmd: c.Create) -> str:
        if not cmd.idempotency_key:
            return ""
        return self.idempotent_task_id(cmd.tenant, cmd.idempotency_key, cmd.now_ms)

    def idempotent_task_id(self, tenant: str, key: str, now_ms: int) -> str:
        """The task a create with this live idempotency key made, or "". After a reshard that
        task may be held by another shard (engine/reshard.py)."""
        raw = self._get(keys.idempotency(tenant, key))
        if raw is None:
            return ""
        task_id, expires_ms = records.decode_idempotency(raw)
        return task_id if expires_ms > now_ms else ""

    def _heartbeat(self, cmd: c.Heartbeat) -> LeaseExtended:
        task = self._leased_task(cmd)
        if task.cancel_requested:
            return LeaseExtended(self._finish_cancelled(task, cmd.now_ms).task)
        self.index.unplace(task.id)
        task.lease_until_ms = cmd.now_ms + cmd.extend_ms
        task.updated_ms = cmd.now_ms
        self.index.place(task, cmd.now_ms)
        self._put_live(task)
        return LeaseExtended(task)

    def _abandon(self, cmd: c.Abandon) -> Requeued:
        task = self._leased_task(cmd)
        if task.cancel_requested:
            return Requeued(self._finish_cancelled(task, cmd.now_ms).task)
        # Handing a task back is not a failed delivery: it gives its attempt back, so that
        # `attempts` never passes `max_attempts` and a redeploy cannot exhaust a task.
        task.attempts = max(task.attempts - 1, 0)
        self._requeue(task, cmd.now_ms, cmd.now_ms)
        return Requeued(task)

    def _requeue(self, task: Task, now_ms: int, visible_ms: int) -> None:
        """Back to PENDING at the tail of its priority, claimable from `visible_ms`."""
        self.index.unplace(task.id)
        self._ctx.to_pending(task, now_ms, visible_ms)

    def _nack(self, cmd: c.Nack) -> Nacked:
        task = self._leased_task(cmd)
        if task.cancel_requested:
            self._finish_cancelled(task, cmd.now_ms)
            return Nacked(0, dead_lettered=False, cancelled=True)
        if task.attempts >= task.max_attempts:
            self._dead_letter(task, cmd.now_ms, cmd.reason or "MAX_ATTEMPTS")
            return Nacked(0, dead_lettered=True)
        if cmd.delay_ms is None:
            delay_ms = self.config.backoff.delay_seconds(task.attempts, cmd.jitter) * 1000
        else:
            delay_ms = cmd.delay_ms
        self._requeue(task, cmd.now_ms, cmd.now_ms + delay_ms)
        return Nacked(delay_ms // 1000, dead_lettered=False)

    def _complete(self, cmd: c.Complete) -> Completed:
        task = self._leased_task(cmd)
        if task.cancel_requested:
            return self._finish_cancelled(task, cmd.now_ms)
        status = Status(cmd.status)
        record = ResultRecord(
            task_id=task.id,
            status=status,
            result=cmd.result,
            error=cmd.error,
            artifacts=[Artifact(name, url) for name, url in cmd.artifacts],
            completed_ms=cmd.now_ms,
        )
        task.error = cmd.error if status is Status.FAILED else ""
        self._finish(task, cmd.now_ms, status, Location.NONE, record)
        return Completed(task, record)

    def _dead_letter(self, task: Task, now_ms: int, error: str, *, via_lease_expiry: bool = False) -> None:
        """Terminal FAILED in the DLQ, with a result record so GET result answers (spec 01 gap 5)."""
        task.error = error
        record = ResultRecord(task_id=task.id, status=Status.FAILED, error=error, completed_ms=now_ms)
        cmd_key = command_key(task.command)
        count = self.index.dlq_counts.get((task.tenant, cmd_key), 0) + 1
        self.index.dlq_counts[(task.tenant, cmd_key)] = count
        self._ops[keys.dlq(task.tenant, cmd_key, task.id)] = b""
        self._ops[keys.dlq_count(task.tenant, cmd_key)] = keys.be8(count)
        self._finish(task, now_ms, Status.FAILED, Location.DLQ_SET, record, via_lease_expiry)

    def _finish(
        self,
        task: Task,
        now_ms: int,
        status: Status,
        location: Location,
        record: ResultRecord,
        via_lease_expiry: bool = False,
    ) -> None:
        """Leave the live range for good: task, result and retention entry in one batch."""
        self.index.remove(task.id)
        task.status = status
        task.location = location
        task.worker_id = ""
        task.lease_until_ms = 0
        task.has_result = True
        task.updated_ms = task.finished_ms = now_ms
        self._ops[keys.live(task.id)] = None
        self._ops[keys.finished(task.id)] = records.encode_task(task)
        self._ops[keys.result(task.id)] = records.encode_result(record)
        # The entry carries the finish time: one left behind by an earlier finish of a task
        # that was requeued from the DLQ since must not delete its later record.
        expires_ms = now_ms + self.config.retention_for(task)
        self._ops[keys.retention(expires_ms, task.id)] = keys.be8(now_ms)
        cmd_key = command_key(task.command)
        listing.stage_finished(self._ops, task, cmd_key)
        self.throughput.record(task.tenant, cmd_key, status, now_ms)
        if task.webhook:
            self.outbox.owe(self._ctx, task, record, now_ms)
        self._events.append(Finished(task, via_lease_expiry))

    def _finish_cancelled(self, task: Task, now_ms: int, via_lease_expiry: bool = False) -> Completed:
        """Finish a live task as CANCELLED; a cancelled task is never retried (issue 14)."""
        record = cancel.cancelled_record(task.id, now_ms)
        task.error = cancel.CANCELLED_ERROR
        self._finish(task, now_ms, Status.CANCELLED, Location.NONE, record, via_lease_expiry)
        return Completed(task, record)

    # -- background work -----------------------------------------------------------------

    def _tick(self, cmd: c.Tick) -> Swept:
        swept = Swept(promoted=claim.promote_due(self._ctx, cmd.now_ms))
        rng = random.Random(cmd.jitter_seed)
        while swept.expired < cmd.limit and (live := self.index.pop_expired_lease(cmd.now_ms)):
            task = self._ctx.load(live)
            swept.expired += 1
            self._events.append(TaskEvent("lease_expired", task))
            if task.cancel_requested:
                self._finish_cancelled(task, cmd.now_ms, via_lease_expiry=True)
            elif task.attempts >= task.max_attempts:
                self._dead_letter(task, cmd.now_ms, "LEASE_EXPIRED", via_lease_expiry=True)
                swept.dead_lettered += 1
            else:
                delay_s = self.config.backoff.delay_seconds(task.attempts, rng.random())
                self._requeue(task, cmd.now_ms, cmd.now_ms + delay_s * 1000)
        swept.deleted = retention.expire_finished(self._ctx, cmd.now_ms, cmd.limit)
        swept.idempotency_keys_expired = retention.expire_idempotency(self._ctx, cmd.now_ms, cmd.limit)
        return swept


def _dlq_tool(ctx: ApplyContext, command: c.DlqRequeue | c.DlqPurge) -> Outcome:
    if isinstance(command, c.DlqRequeue):
        return dlq.requeue(ctx, command)
    return dlq.purge(ctx, command)
