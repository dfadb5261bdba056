"""Task counters and the processing-latency histogram, recorded without prometheus_client's locks.

Every task event costs a dict lookup and an addition (a finish: also a bisect), where a
prometheus_client child costs a label lookup, a lock and, for a histogram, a Python loop
over its buckets. The exposition (the reference's names, spec 04 §6) is built from these
rows at scrape time. Only the event loop records and renders (events are published there,
and so is the metrics page), so no lock is needed. Command names come from clients: past
`max_series` label sets per metric, new ones fold into the `_other` command.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from codeq.observability.rows import RowCollector, cumulative, le_labels
from codeq.observability.series import OTHER

# Engine event kind -> (metric name without `_total`, help).
COUNTED = {
    "created": ("codeq_task_created", "Tasks enqueued (idempotent replays excluded)."),
    "claimed": ("codeq_task_claimed", "Tasks claimed."),
    "lease_expired": ("codeq_lease_expired", "Leases that expired."),
}
Finish = tuple[str, str]  # (command, status)


class TaskStats(RowCollector):
    def __init__(self, buckets: Iterable[float], max_series: int) -> None:
        self._bounds = sorted(buckets)
        self._max_series = max_series
        self._counts: dict[str, dict[str, float]] = {kind: {} for kind in COUNTED}
        # (command, status) -> [finished, latency count, latency sum, per-bucket counts..., above]
        self._finished: dict[Finish, list[float]] = {}
        self._finished_own = 0  # rows of _finished under their own command

    def event(self, kind: str, command: str) -> None:
        """One `created`, `claimed` or `lease_expired` event (other kinds are not counted)."""
        counts = self._counts.get(kind)
        if counts is None:
            return
        if command not in counts and self._max_series and len(counts) - (OTHER in counts) >= self._max_series:
            command = OTHER
        counts[command] = counts.get(command, 0.0) + 1

    def finished(self, command: str, status: str, seconds: float | None) -> None:
        """One terminal transition; `seconds` from creation, when known."""
        row = self._finished.get((command, status))
        if row is None:
            row = self._finished_row(command, status)
        row[0] += 1
        if seconds is not None:
            row[1] += 1
            row[2] += seconds
            row[3 + bisect_left(self._bounds, seconds)] += 1

    def _finished_row(self, command: str, status: str) -> list[float]:
        if self._max_series and self._finished_own >= self._max_series:
            command = OTHER
        else:
            self._finished_own += 1
        row = self._finished.get((command, status))
        if row is None:
            row = self._finished[(command, status)] = [0.0] * (len(self._bounds) + 4)
        return row

    def _families(self) -> Iterator[Metric]:
        for kind, (name, help_text) in COUNTED.items():
            family = CounterMetricFamily(name, help_text, labels=["command"])
            for command, count in sorted(self._counts[kind].items()):
                family.add_metric([command], count)
            yield family
        labels = ["command", "status"]
        completed = CounterMetricFamily(
            "codeq_task_completed", "Tasks that reached a terminal state.", labels=labels
        )
        latency = HistogramMetricFamily(
            "codeq_task_processing_latency_seconds", "From creation to the terminal state.", labels=labels
        )
        bounds = le_labels(self._bounds)
        for (command, status), row in sorted(self._finished.items()):
            completed.add_metric([command, status], row[0])
            if row[1]:
                latency.add_metric([command, status], cumulative(bounds, row[3:]), row[2])
        yield completed
        yield latency
