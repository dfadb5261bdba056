"""Wire timestamps (spec 01): the cached renderings change exactly at second boundaries."""

from __future__ import annotations

from datetime import timedelta, timezone

from codeq.transport.http.render import TimeFormat


def test_lease_until_is_utc_seconds_and_follows_the_second() -> None:
    times = TimeFormat(timezone(timedelta(hours=-3)))  # the zone never applies to leaseUntil
    assert times.utc_seconds(1_700_000_000_999) == "2023-11-14T22:13:20Z"
    assert times.utc_seconds(1_700_000_001_000) == "2023-11-14T22:13:21Z"
    assert times.utc_seconds(1_700_000_000_000) == "2023-11-14T22:13:20Z"  # back again


def test_timestamps_keep_milliseconds_and_the_zone_across_cached_seconds() -> None:
    times = TimeFormat(timezone(timedelta(hours=-3)))
    assert times.timestamp(1_700_000_000_120) == "2023-11-14T19:13:20.12-03:00"
    assert times.timestamp(1_700_000_000_000) == "2023-11-14T19:13:20-03:00"
    assert times.timestamp(1_700_000_001_005) == "2023-11-14T19:13:21.005-03:00"
