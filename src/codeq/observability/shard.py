"""What one shard's group commits, Raft rounds and engine applies leave behind: metrics, spans."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from codeq.observability.metrics import Metrics

if TYPE_CHECKING:  # tracing imports OpenTelemetry, which only the `otel` extra installs
    from codeq.observability.tracing import Tracing

ApplyT = TypeVar("ApplyT", bound=Callable[[Any], Any])


class ShardObserver:
    def __init__(self, metrics: Metrics, tracing: Tracing | None, shard: int, *, fsync: bool) -> None:
        self._metrics = metrics
        self._tracing = tracing
        self._label = str(shard)
        self._shard = shard
        self._fsync = fsync

    def commit(self, commands: int, seconds: float) -> None:
        """One group commit: `commands` merged into one write (and one fsync, when on)."""
        self._metrics.observe_commit(self._label, commands, seconds)
        if self._tracing is not None:
            attributes = {
                "codeq.shard": self._shard,
                "codeq.commit.commands": commands,
                "codeq.fsync": self._fsync,
            }
            self._tracing.finished("codeq.commit", seconds, attributes)

    def raft_decided(self, commands: int, seconds: float) -> None:
        """One Raft entry of `commands`, from proposal to its outcome here."""
        self._metrics.observe_raft_commit(self._label, commands, seconds)
        if self._tracing is not None:
            self._tracing.finished(
                "codeq.raft.propose", seconds, {"codeq.shard": self._shard, "codeq.raft.commands": commands}
            )

    def raft_applied(self, seconds: float) -> None:
        self._metrics.observe_raft_apply(self._label, seconds)

    def traced(self, apply: ApplyT) -> ApplyT:
        """`apply` itself when tracing is off (nothing added to the hot path), else in a span."""
        tracing = self._tracing
        if tracing is None:
            return apply
        shard = self._shard

        def traced_apply(command: Any) -> Any:
            with tracing.span(
                "codeq.engine.apply", {"codeq.shard": shard, "codeq.command_type": type(command).__name__}
            ):
                return apply(command)

        return traced_apply  # type: ignore[return-value]  # same signature as `apply`
