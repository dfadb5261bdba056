"""HTTP request count and duration, recorded on the hot path without prometheus_client's locks.

Every request costs one dict lookup, a bisect and three additions; the exposition (a
counter and a histogram, the names the dashboards use) is built from these rows at scrape
time. Only the event loop records and renders, so no lock is needed. `bound` gives a
recorder for one route and method, so a request does not build a label key at all.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from codeq.observability.rows import RowCollector, cumulative, le_labels
from codeq.observability.series import OTHER

Key = tuple[str, str, int]  # (route template, method, status)


class RequestStats(RowCollector):
    """`codeq_http_requests_total` and `codeq_http_request_duration_seconds` from one set of rows."""

    def __init__(self, buckets: Iterable[float], max_series: int) -> None:
        self.bounds = sorted(buckets)
        self._max_series = max_series
        # key -> [count, sum of seconds, per-bucket counts..., count above the last bound]
        self._rows: dict[Key, list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        row = self._rows.get((route, method, status))
        if row is None:
            row = self.row(route, method, status)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect_left(self.bounds, seconds)] += 1

    def bound(self, route: str, method: str) -> RouteStats:
        """The recorder of one (route template, method): rows by status, bound once."""
        return RouteStats(self, route, method)

    def row(self, route: str, method: str, status: int) -> list[float]:
        """The row counting (route, method, status), made on first use (`_other` past the cap)."""
        key = (route, method, status)
        if key not in self._rows and len(self._rows) >= self._max_series:
            key = (OTHER, method, status)  # routes are templates; this only guards the bound
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = [0.0] * (len(self.bounds) + 3)
        return row

    def _families(self) -> Iterator[Metric]:
        labels = ["route", "method", "status"]
        count = CounterMetricFamily("codeq_http_requests", "HTTP requests answered.", labels=labels)
        duration = HistogramMetricFamily(
            "codeq_http_request_duration_seconds",
            "HTTP request handling time, by route template and status.",
            labels=labels,
        )
        bounds = le_labels(self.bounds)
        for (route, method, status), row in sorted(self._rows.items()):
            values = [route, method, str(status)]
            count.add_metric(values, row[0])
            duration.add_metric(values, cumulative(bounds, row[2:]), row[1])
        yield count
        yield duration


class RouteStats:
    """`RequestStats.observe` for one route and method, with its rows found by status alone."""

    __slots__ = ("_bounds", "_by_status", "_method", "_route", "_stats")

    def __init__(self, stats: RequestStats, route: str, method: str) -> None:
        self._stats = stats
        self._bounds = stats.bounds
        self._route = route
        self._method = method
        self._by_status: dict[int, list[float]] = {}

    def observe(self, status: int, seconds: float) -> None:
        row = self._by_status.get(status)
        if row is None:
            row = self._by_status[status] = self._stats.row(self._route, self._method, status)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect_left(self._bounds, seconds)] += 1
