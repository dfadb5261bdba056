"""HTTP request count and duration, recorded on the hot path without prometheus_client's locks.

Every request costs one dict lookup, a bisect and three additions; the exposition (a
counter and a histogram, the names the dashboards use) is built from these rows at scrape
time. Only the event loop records and renders, so no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from codeq.observability.series import OTHER

Key = tuple[str, str, int]  # (route template, method, status)


class RequestStats(Collector):
    """`codeq_http_requests_total` and `codeq_http_request_duration_seconds` from one set of rows."""

    def __init__(self, buckets: Iterable[float], max_series: int) -> None:
        self._bounds = sorted(buckets)
        self._max_series = max_series
        # key -> [count, sum of seconds, per-bucket counts..., count above the last bound]
        self._rows: dict[Key, list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        row = self._rows.get((route, method, status))
        if row is None:
            row = self._row(route, method, status)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect_left(self._bounds, seconds)] += 1

    def _row(self, route: str, method: str, status: int) -> list[float]:
        key = (route, method, status)
        if len(self._rows) >= self._max_series:
            key = (OTHER, method, status)  # routes are templates; this only guards the bound
            if key in self._rows:
                return self._rows[key]
        row = self._rows[key] = [0.0] * (len(self._bounds) + 3)
        return row

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> Iterator[Metric]:
        labels = ["route", "method", "status"]
        count = CounterMetricFamily("codeq_http_requests", "HTTP requests answered.", labels=labels)
        duration = HistogramMetricFamily(
            "codeq_http_request_duration_seconds",
            "HTTP request handling time, by route template and status.",
            labels=labels,
        )
        bounds = [_le(bound) for bound in self._bounds] + ["+Inf"]
        for (route, method, status), row in sorted(self._rows.items()):
            values = [route, method, str(status)]
            count.add_metric(values, row[0])
            cumulative, buckets = 0.0, []
            for le, in_bucket in zip(bounds, row[2:], strict=True):
                cumulative += in_bucket
                buckets.append((le, cumulative))
            duration.add_metric(values, buckets, row[1])
        yield count
        yield duration


def _le(bound: float) -> str:
    """The `le` label as prometheus_client writes it (`0.005`, `1.0`)."""
    return repr(float(bound))
