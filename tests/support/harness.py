"""A synchronous engine over the memory store: apply, write the ops, restart at will."""

from __future__ import annotations

import itertools
from typing import Any

from codeq.core.backoff import BackoffPolicy
from codeq.core.clock import FakeClock
from codeq.engine import commands as c
from codeq.engine.engine import Engine, EngineConfig
from codeq.kv.memory import MemoryKV

TENANT = "acme"
WORKER = "worker-1"


class EngineHarness:
    def __init__(self, config: EngineConfig | None = None) -> None:
        self.clock = FakeClock()
        self.kv = MemoryKV()
        self.config = config or EngineConfig(backoff=BackoffPolicy("fixed", 5, 900))
        self.engine = Engine(self.kv, self.config)
        self._ids = itertools.count(1)

    def apply(self, command: c.AnyCommand) -> Any:
        ops, outcome, _ = self.engine.apply(command)
        self.kv.write(ops, sync=True)
        return outcome

    def restart(self) -> int:
        self.engine = Engine(self.kv, self.config)
        return self.engine.recover(self.clock.now_ms())

    def new_id(self) -> str:
        return f"00000000-0000-4000-8000-{next(self._ids):012d}"

    def create(self, command: str = "render", *, tenant: str = TENANT, **fields: Any) -> Any:
        fields.setdefault("task_id", self.new_id())
        fields.setdefault("payload", '{"n":1}')
        return self.apply(c.Create(now_ms=self.clock.now_ms(), tenant=tenant, command=command, **fields))

    def claim(
        self,
        commands: list[str] | None = None,
        *,
        tenant: str = TENANT,
        worker: str = WORKER,
        lease_ms: int = 60_000,
        count: int = 1,
    ) -> list[Any]:
        claim = c.Claim(
            now_ms=self.clock.now_ms(),
            tenant=tenant,
            worker_id=worker,
            commands=commands if commands is not None else ["render"],
            lease_ms=lease_ms,
            count=count,
        )
        return list(self.apply(claim).tasks)

    def complete(self, task_id: str, *, worker: str = WORKER, tenant: str = TENANT, **fields: Any) -> Any:
        fields.setdefault("status", "COMPLETED")
        fields.setdefault("result", '{"ok":true}')
        return self.apply(
            c.Complete(now_ms=self.clock.now_ms(), tenant=tenant, worker_id=worker, task_id=task_id, **fields)
        )

    def nack(
        self,
        task_id: str,
        delay_ms: int | None = None,
        *,
        worker: str = WORKER,
        reason: str = "",
        lease_token: int = 0,
    ) -> Any:
        return self.apply(
            c.Nack(
                now_ms=self.clock.now_ms(),
                tenant=TENANT,
                worker_id=worker,
                task_id=task_id,
                delay_ms=delay_ms,
                reason=reason,
                jitter=0.5,
                lease_token=lease_token,
            )
        )

    def tick(self, limit: int = 512) -> Any:
        return self.apply(c.Tick(now_ms=self.clock.now_ms(), jitter_seed=7, limit=limit))

    def cancel(self, task_id: str, *, tenant: str = TENANT) -> Any:
        return self.apply(c.Cancel(now_ms=self.clock.now_ms(), tenant=tenant, task_id=task_id))
