"""Bounded label sets: metric types whose open-ended labels fold into one `_other` series at a cap.

A label value a client chooses (a command name, a tenant) must not grow `/metrics` without
bound: 30,000 command names once made the page 9.2 MB and every scrape stalled the event
loop (issue 11). Beyond `max_series` distinct label sets, a metric records new ones under
`_other` for its open-ended labels and keeps the bounded ones (status, outcome, queue).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

OTHER = "_other"
# The labels whose values come from clients; every other label has a small fixed set of values.
OPEN_LABELS = frozenset({"command", "tenant"})
DEFAULT_MAX_SERIES = 1000


class _Capped:
    """The capping `labels()`; mixed into prometheus_client's types (whose children it builds)."""

    _labelnames: tuple[str, ...]
    max_series: int
    _seen: set[tuple[str, ...]]
    _open: tuple[bool, ...]

    def _setup_cap(self, max_series: int) -> None:
        self.max_series = max_series
        self._seen = set()
        self._open = tuple(name in OPEN_LABELS for name in self._labelnames)

    def labels(self, *values: object, **by_name: object) -> Any:
        if by_name:
            values = tuple(by_name[name] for name in self._labelnames)
        key = tuple(str(value) for value in values)
        if key not in self._seen:
            if self.max_series and len(self._seen) >= self.max_series and any(self._open):
                key = tuple(OTHER if opened else value for opened, value in zip(self._open, key, strict=True))
            else:
                self._seen.add(key)
        return super().labels(*key)  # type: ignore[misc]  # the prometheus_client base class

    @property
    def series(self) -> int:
        """Distinct label sets recorded under their own names (`_other` excluded)."""
        return len(self._seen)


class CappedCounter(_Capped, Counter):
    def __init__(self, *args: Any, max_series: int = DEFAULT_MAX_SERIES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_cap(max_series)


class CappedHistogram(_Capped, Histogram):
    def __init__(self, *args: Any, max_series: int = DEFAULT_MAX_SERIES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_cap(max_series)


def cap_series(rows: dict[tuple[str, str, str], int], cap: int) -> dict[tuple[str, str, str], int]:
    """At most `cap` series: beyond it, the tail (in label order) folds into tenant "_other".

    Label order keeps the choice stable between scrapes. If even the folded series would not
    fit, commands fold too, leaving one series per queue.
    """
    if len(rows) <= cap:
        return rows
    keys = sorted(rows)
    # folded[i] = distinct (command, queue) among keys[i:], i.e. series the tail folds into.
    folded = [0] * (len(keys) + 1)
    seen: set[tuple[str, str]] = set()
    for i in range(len(keys) - 1, -1, -1):
        seen.add(keys[i][1:])
        folded[i] = len(seen)
    kept = 0
    while kept < len(keys) and kept + 1 + folded[kept + 1] <= cap:
        kept += 1
    capped = {key: rows[key] for key in keys[:kept]}
    fold_commands = kept + folded[kept] > cap
    for tenant_command_queue in keys[kept:]:
        _, command, queue = tenant_command_queue
        key = (OTHER, OTHER if fold_commands else command, queue)
        capped[key] = capped.get(key, 0) + rows[tenant_command_queue]
    return capped
