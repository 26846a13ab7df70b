"""Builders of hand-checkable histories for the measurement tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vpp.measure.series import IntervalAverage

STEP = timedelta(minutes=15)
LoadFn = Callable[[date, time], float | None]


def local(tz: str, day: date, hh: int, mm: int = 0) -> datetime:
    """An aware datetime at local wall time `hh:mm` of `day` in `tz`."""
    return datetime.combine(day, time(hh, mm), tzinfo=ZoneInfo(tz))


def history(
    tz: str, first: date, last: date, load: LoadFn, until: datetime | None = None
) -> list[IntervalAverage]:
    """15-min interval averages for local days `first`..`last` (inclusive), `load(day, wall)`
    kW per interval (None leaves the interval out), stopping before `until` if given."""
    zone = ZoneInfo(tz)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    if until is not None:
        end = min(end, until.astimezone(UTC))
    out: list[IntervalAverage] = []
    t = start
    while t < end:
        loc = t.astimezone(zone)
        kw = load(loc.date(), loc.time())
        if kw is not None:
            out.append(IntervalAverage(t, STEP, kw))
        t += STEP
    return out
