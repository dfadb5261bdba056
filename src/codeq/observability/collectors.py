"""Scrape-time metrics: queue depth (capped), Raft group state and readiness, read from sources."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from codeq.observability.series import OTHER, cap_series

log = logging.getLogger("codeq.metrics")

DepthRow = tuple[str, str, str, int]  # (tenant, command, queue, count)
DepthSource = Callable[[], Iterable[DepthRow]]


@dataclass(frozen=True, slots=True)
class RaftGroupState:
    """One Raft group as this node sees it at scrape time."""

    group: str
    is_leader: bool
    has_leader: bool
    term: int
    commit_index: int
    applied_index: int
    proposals_waiting: int


RaftSource = Callable[[], Iterable[RaftGroupState]]


class QueueDepthCollector(Collector):
    """`codeq_queue_depth{tenant,command,queue}` computed at scrape time from in-memory counters.

    With tenant labels off (the default) the tenant label is empty and depths are summed over
    tenants: tenant names are the operator's customers and should not leave through a scrape.
    """

    def __init__(self, max_series: int, tenant_labels: bool) -> None:
        self.source: DepthSource | None = None
        self.max_series = max_series
        self.tenant_labels = tenant_labels

    def describe(self) -> Iterable[Metric]:
        return [self._family({})]

    def collect(self) -> Iterator[Metric]:
        totals: dict[tuple[str, str, str], int] = {}
        if self.source is not None:
            try:
                for tenant, command, queue, count in self.source():
                    key = (tenant if self.tenant_labels else "", command, queue)
                    totals[key] = totals.get(key, 0) + count  # shards report the same queue apart
            except Exception:
                # A failing source must not break the whole scrape.
                log.exception("queue depth collection failed")
                totals = {}
        if self.tenant_labels:
            yield self._family(cap_series(totals, self.max_series))
        else:
            yield self._family(cap_commands(totals, self.max_series))

    @staticmethod
    def _family(rows: dict[tuple[str, str, str], int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "codeq_queue_depth", "Tasks per tenant, command and queue.", labels=["tenant", "command", "queue"]
        )
        for labels, count in rows.items():
            family.add_metric(labels, count)
        return family


def cap_commands(rows: dict[tuple[str, str, str], int], cap: int) -> dict[tuple[str, str, str], int]:
    """At most `cap` series (or one per queue, if fewer): the first commands in name order keep
    their series, the rest fold into command "_other" per queue."""
    if len(rows) <= cap:
        return rows
    keys = sorted(rows)
    room = max(cap - len({key[2] for key in keys}), 0)
    capped = {key: rows[key] for key in keys[:room]}
    for key in keys[room:]:
        folded = (key[0], OTHER, key[2])
        capped[folded] = capped.get(folded, 0) + rows[key]
    return capped


class RaftCollector(Collector):
    """Per Raft group: leadership, term, commit and applied index, the apply backlog, proposals."""

    def __init__(self) -> None:
        self.source: RaftSource | None = None

    def describe(self) -> Iterable[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterator[Metric]:
        states: list[RaftGroupState] = []
        if self.source is not None:
            try:
                states = list(self.source())
            except Exception:
                log.exception("raft state collection failed")
        yield from self._families(states)

    @staticmethod
    def _families(states: list[RaftGroupState]) -> Iterator[GaugeMetricFamily]:
        rows: list[tuple[str, str, Callable[[RaftGroupState], float]]] = [
            ("codeq_raft_is_leader", "1 when this node leads the group.", lambda s: s.is_leader),
            (
                "codeq_raft_has_leader",
                "1 when this node knows a leader for the group.",
                lambda s: s.has_leader,
            ),
            ("codeq_raft_term", "The current Raft term.", lambda s: s.term),
            ("codeq_raft_commit_index", "The highest log index known committed.", lambda s: s.commit_index),
            ("codeq_raft_applied_index", "The highest log index applied here.", lambda s: s.applied_index),
            (
                "codeq_raft_apply_queue_depth",
                "Committed entries not yet applied here (apply lag, in entries).",
                lambda s: max(s.commit_index - s.applied_index, 0),
            ),
            (
                "codeq_raft_proposals_in_flight",
                "Commands waiting to be proposed or in the entry being replicated.",
                lambda s: s.proposals_waiting,
            ),
        ]
        for name, help_text, value in rows:
            family = GaugeMetricFamily(name, help_text, labels=["group"])
            for state in states:
                family.add_metric([state.group], float(value(state)))
            yield family
