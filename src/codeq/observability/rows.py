"""Collectors that keep plain rows of floats and build their metric families only at scrape time.

The recorders (observability/http_stats.py, task_stats.py) add to lists on the hot path,
without prometheus_client's locks; this is what they share for the exposition.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector


class RowCollector(Collector):
    """A collector whose families come from `_families()`, read on the event loop only."""

    @abstractmethod
    def _families(self) -> Iterator[Metric]:
        """Each collector names its own families."""

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


def le_label(bound: float) -> str:
    """The `le` label as prometheus_client writes it (`0.005`, `1.0`)."""
    return repr(float(bound))


def le_labels(bounds: Sequence[float]) -> list[str]:
    """Every bucket's `le` label, `+Inf` last."""
    return [le_label(bound) for bound in bounds] + ["+Inf"]


def cumulative(labels: Sequence[str], in_buckets: Sequence[float]) -> list[tuple[str, float]]:
    """Per-bucket counts as the cumulative `(le, count)` pairs a histogram family takes."""
    total, buckets = 0.0, []
    for le, count in zip(labels, in_buckets, strict=True):
        total += count
        buckets.append((le, total))
    return buckets
