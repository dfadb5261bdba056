"""A Hypothesis state machine over the engine, checked against a small model (design.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from codeq.core.errors import NotFound, NotOwner, StaleLease, WrongState
from codeq.core.model import Location, Status
from codeq.engine import commands as c
from codeq.engine import listing
from tests.support.harness import TENANT, EngineHarness

WORKERS = ("w1", "w2")
BACKOFF_MS = 5000  # the harness's fixed policy


@dataclass
class ModelTask:
    state: str  # ready | delayed | leased | completed | failed | dlq | cancelled
    attempts: int
    max_attempts: int
    visible_ms: int = 0
    owner: str = ""
    lease_until_ms: int = 0
    lease_token: int = 0  # the current claim's token while leased
    tokens: tuple[int, ...] = ()  # every token handed out for this task, oldest first

    def token(self, fenced: bool) -> int:
        """What the holder presents: its lease token, or none (the owner check alone)."""
        return self.lease_token if fenced else 0

    def stale_tokens(self) -> list[int]:
        return [t for t in self.tokens if self.state != "leased" or t != self.lease_token]

    cancel_requested: bool = False  # cancelled while leased: the owner's next call finishes it

    def claimable(self, now_ms: int) -> bool:
        return self.state == "ready" or (self.state == "delayed" and self.visible_ms <= now_ms)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = EngineHarness()
        self.model: dict[str, ModelTask] = {}
        self.finishes = {"completed": 0, "failed": 0}  # since the last restart (not stored)

    @property
    def now(self) -> int:
        return self.h.clock.now_ms()

    def _ids(self, *states: str) -> list[str]:
        return sorted(i for i, t in self.model.items() if t.state in states)

    @rule(
        priority=st.integers(0, 9),
        delay_ms=st.sampled_from([0, 0, 1000, 4000]),
        max_attempts=st.integers(1, 3),
    )
    def create(self, priority: int, delay_ms: int, max_attempts: int) -> None:
        visible = self.now + delay_ms if delay_ms else 0
        task = self.h.create(priority=priority, visible_ms=visible, max_attempts=max_attempts).task
        self.model[task.id] = ModelTask("delayed" if delay_ms else "ready", 0, max_attempts, visible)

    @rule(worker=st.sampled_from(WORKERS), lease_ms=st.sampled_from([1000, 5000]), count=st.integers(1, 3))
    def claim(self, worker: str, lease_ms: int, count: int) -> None:
        claimable = {i for i, t in self.model.items() if t.claimable(self.now)}
        tasks = self.h.claim(worker=worker, lease_ms=lease_ms, count=count)
        assert len(tasks) == min(count, len(claimable))
        for task in tasks:
            assert task.id in claimable
            m = self.model[task.id]
            m.state, m.owner, m.lease_until_ms = "leased", worker, self.now + lease_ms
            m.attempts += 1
            assert task.attempts == m.attempts
            # Every claim gets a token no earlier claim of the task had.
            assert task.lease_epoch > max(m.tokens, default=0)
            m.lease_token, m.tokens = task.lease_epoch, (*m.tokens, task.lease_epoch)

    @precondition(lambda self: self._ids("leased"))
    @rule(data=st.data(), by_owner=st.booleans(), fenced=st.booleans())
    def heartbeat(self, data: st.DataObject, by_owner: bool, fenced: bool) -> None:
        task_id = data.draw(st.sampled_from(self._ids("leased")))
        m = self.model[task_id]
        worker = m.owner if by_owner else next(w for w in WORKERS if w != m.owner)
        command = c.Heartbeat(
            now_ms=self.now,
            tenant=TENANT,
            worker_id=worker,
            task_id=task_id,
            extend_ms=3000,
            lease_token=m.token(fenced),
        )
        if not by_owner:
            self._expect(NotOwner, command)
            return
        outcome = self.h.apply(command)
        if self._finished_by_cancel(m):
            assert outcome.task.status is Status.CANCELLED
            return
        m.lease_until_ms = self.now + 3000

    @precondition(lambda self: self._ids("leased"))
    @rule(data=st.data(), delay_ms=st.sampled_from([None, 0, 2000]), fenced=st.booleans())
    def nack(self, data: st.DataObject, delay_ms: int | None, fenced: bool) -> None:
        task_id = data.draw(st.sampled_from(self._ids("leased")))
        m = self.model[task_id]
        outcome = self.h.nack(task_id, delay_ms, worker=m.owner, lease_token=m.token(fenced))
        if self._finished_by_cancel(m):
            assert outcome.cancelled and not outcome.dead_lettered
            return
        assert outcome.dead_lettered == (m.attempts >= m.max_attempts)
        self._after_failed_delivery(m, BACKOFF_MS if delay_ms is None else delay_ms)

    def _finished_by_cancel(self, m: ModelTask) -> bool:
        """A leased task an admin cancelled finishes CANCELLED at its owner's next call."""
        if not m.cancel_requested:
            return False
        m.state, m.owner, m.lease_until_ms = "cancelled", "", 0
        return True

    def _after_failed_delivery(self, m: ModelTask, delay_ms: int) -> None:
        if self._finished_by_cancel(m):
            return
        m.owner, m.lease_until_ms = "", 0
        if m.attempts >= m.max_attempts:
            m.state = "dlq"
            self.finishes["failed"] += 1
        elif delay_ms:
            m.state, m.visible_ms = "delayed", self.now + delay_ms
        else:
            m.state, m.visible_ms = "ready", self.now

    @precondition(lambda self: self._ids("leased"))
    @rule(data=st.data(), fenced=st.booleans())
    def abandon(self, data: st.DataObject, fenced: bool) -> None:
        task_id = data.draw(st.sampled_from(self._ids("leased")))
        m = self.model[task_id]
        token = m.token(fenced)
        self.h.apply(
            c.Abandon(now_ms=self.now, tenant=TENANT, worker_id=m.owner, task_id=task_id, lease_token=token)
        )
        if self._finished_by_cancel(m):
            return
        m.state, m.owner, m.lease_until_ms = "ready", "", 0
        m.attempts -= 1

    @precondition(lambda self: self._ids("leased"))
    @rule(data=st.data(), failed=st.booleans(), fenced=st.booleans())
    def complete(self, data: st.DataObject, failed: bool, fenced: bool) -> None:
        task_id = data.draw(st.sampled_from(self._ids("leased")))
        m = self.model[task_id]
        token = m.token(fenced)
        if failed:
            outcome = self.h.complete(
                task_id, worker=m.owner, status="FAILED", result="", error="boom", lease_token=token
            )
        else:
            outcome = self.h.complete(task_id, worker=m.owner, lease_token=token)
        if self._finished_by_cancel(m):
            assert outcome.record.status is Status.CANCELLED
            return
        m.state, m.owner = ("failed" if failed else "completed"), ""
        self.finishes["failed" if failed else "completed"] += 1

    @precondition(lambda self: self.model)
    @rule(data=st.data(), leased=st.booleans())
    def cancel(self, data: st.DataObject, leased: bool) -> None:
        # Half the time a leased task, when there is one: the interesting races are there.
        choices = (leased and self._ids("leased")) or sorted(self.model)
        task_id = data.draw(st.sampled_from(choices))
        m = self.model[task_id]
        if m.state in ("completed", "failed", "dlq"):
            self._expect(WrongState, c.Cancel(now_ms=self.now, tenant=TENANT, task_id=task_id))
            return
        outcome = self.h.cancel(task_id)
        if m.state == "leased":
            m.cancel_requested = True
            assert outcome.task.status is Status.IN_PROGRESS and outcome.task.cancel_requested
        else:
            m.state, m.owner = "cancelled", ""
            assert outcome.task.status is Status.CANCELLED

    @precondition(lambda self: self._ids("completed", "failed", "dlq", "cancelled"))
    @rule(data=st.data())
    def finished_tasks_stay_finished(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self._ids("completed", "failed", "dlq", "cancelled")))
        for worker in WORKERS:
            self._expect(
                WrongState, c.Abandon(now_ms=self.now, tenant=TENANT, worker_id=worker, task_id=task_id)
            )

    @precondition(lambda self: any(m.stale_tokens() for m in self.model.values()))
    @rule(data=st.data(), action=st.sampled_from(["heartbeat", "nack", "abandon", "complete"]))
    def stale_lease_token_is_never_accepted(self, data: st.DataObject, action: str) -> None:
        """A holder whose lease moved on (expired, handed back, claimed again, finished) is
        refused with its old token, whoever holds the task now and whatever worker it names;
        and the refusal changes nothing (the invariants check the state after)."""
        task_id = data.draw(st.sampled_from(sorted(i for i, m in self.model.items() if m.stale_tokens())))
        m = self.model[task_id]
        token = data.draw(st.sampled_from(m.stale_tokens()))
        worker = m.owner or data.draw(st.sampled_from(WORKERS))
        base = {"now_ms": self.now, "tenant": TENANT, "worker_id": worker, "task_id": task_id}
        command: c.AnyCommand = {
            "heartbeat": lambda: c.Heartbeat(**base, extend_ms=3000, lease_token=token),
            "nack": lambda: c.Nack(**base, delay_ms=0, lease_token=token),
            "abandon": lambda: c.Abandon(**base, lease_token=token),
            "complete": lambda: c.Complete(**base, status="COMPLETED", lease_token=token),
        }[action]()
        self._expect(StaleLease, command)

    @rule(seconds=st.sampled_from([0.5, 1, 3, 6]))
    def advance(self, seconds: float) -> None:
        self.h.clock.advance(seconds)

    @rule()
    def tick(self) -> None:
        expired = [m for m in self.model.values() if m.state == "leased" and m.lease_until_ms <= self.now]
        swept = self.h.tick(limit=10_000)
        assert swept.expired == len(expired)
        for m in expired:
            self._after_failed_delivery(m, BACKOFF_MS)

    @precondition(lambda self: self._ids("leased"))
    @rule()
    def leases_run_out(self) -> None:
        """Past every lease, then the reaper: makes expiry (and a cancel it settles) common."""
        self.h.clock.advance(6)
        self.tick()

    @rule()
    def restart(self) -> None:
        before = self._index_counts()
        self.h.restart()
        self.finishes = {"completed": 0, "failed": 0}
        assert self._index_counts() == before

    def _expect(self, error: type[Exception], command: c.AnyCommand) -> None:
        try:
            self.h.apply(command)
        except error:
            return
        raise AssertionError(f"{command} should have raised {error.__name__}")

    def _index_counts(self) -> dict[str, int]:
        ready = sum(q.ready for q in self.h.engine.index.queues.values())
        delayed = sum(q.delayed for q in self.h.engine.index.queues.values())
        leased = sum(q.in_progress for q in self.h.engine.index.queues.values())
        return {"ready_or_delayed": ready + delayed, "leased": leased, "live": len(self.h.engine.index.tasks)}

    @invariant()
    def engine_agrees_with_model(self) -> None:
        engine = self.h.engine
        for task_id, m in self.model.items():
            task = engine.find_task(task_id, TENANT)
            assert task.attempts == m.attempts <= m.max_attempts
            expected = {
                "ready": (Status.PENDING,),
                "delayed": (Status.PENDING,),
                "leased": (Status.IN_PROGRESS,),
                "completed": (Status.COMPLETED,),
                "failed": (Status.FAILED,),
                "dlq": (Status.FAILED,),
                "cancelled": (Status.CANCELLED,),
            }[m.state]
            assert task.status in expected
            assert task.cancel_requested == m.cancel_requested
            if m.state == "leased":
                assert task.worker_id == m.owner and task.lease_until_ms == m.lease_until_ms
                assert task.lease_epoch == m.lease_token
            if m.state == "dlq":
                assert task.location is Location.DLQ_SET
            if m.state in ("completed", "failed", "dlq", "cancelled"):
                record = engine.find_result(task_id)
                assert record is not None
                assert (record.status is Status.CANCELLED) == (m.state == "cancelled")
        live = {i for i, m in self.model.items() if m.state in ("ready", "delayed", "leased")}
        assert set(engine.index.tasks) == live
        counts = self._index_counts()
        assert counts["leased"] == len(self._ids("leased"))
        assert counts["ready_or_delayed"] == len(self._ids("ready", "delayed"))

    @invariant()
    def listings_and_counters_agree_with_model(self) -> None:
        engine = self.h.engine
        by_state = {
            listing.READY: ("ready",),
            listing.DELAYED: ("delayed",),
            listing.IN_PROGRESS: ("leased",),
            listing.COMPLETED: ("completed",),
            listing.FAILED: ("failed",),
            listing.DEAD_LETTERED: ("dlq",),
            listing.CANCELLED: ("cancelled",),
        }
        for state, model_states in by_state.items():
            for newest in (True, False):
                query = listing.PageQuery(TENANT, "render", state, None, newest, 10_000)
                if state in listing.LIVE_STATES:
                    entries = engine.index.listed(query)
                else:
                    entries = listing.finished_page(self.h.kv, query)
                assert entries == sorted(entries, reverse=newest)
                ids = [task_id for _, _, task_id in entries]
                assert len(ids) == len(set(ids))
                # A due delayed task is promoted only by the next claim or tick: either state.
                if state not in (listing.READY, listing.DELAYED):
                    assert sorted(ids) == self._ids(*model_states), state
        live = [e[2] for s in (listing.READY, listing.DELAYED) for e in engine.index.listed(
            listing.PageQuery(TENANT, "render", s, None, True, 10_000))]  # fmt: skip
        assert sorted(live) == self._ids("ready", "delayed")
        completed_1m, failed_1m, completed_1h, failed_1h = engine.throughput.window(
            TENANT, "render", self.now
        )
        assert (completed_1h, failed_1h) == (self.finishes["completed"], self.finishes["failed"])
        assert completed_1m <= completed_1h and failed_1m <= failed_1h

    @invariant()
    def unknown_ids_are_not_found(self) -> None:
        try:
            self.h.engine.find_task("missing", TENANT)
        except NotFound:
            return
        raise AssertionError("missing task found")


EngineMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True
)
TestEngineMachine = EngineMachine.TestCase
