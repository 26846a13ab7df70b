"""Comfort violation of thermal zones: how far and how long a zone left its comfort band.

The measure is the time integral of the distance outside the band, in degC·h: a zone 1 degC
above its upper bound for 30 minutes adds 0.5 degC·h. Zone temperature is a continuous
physical quantity, so it is interpolated linearly between samples (the exact integral of the
piecewise-linear curve, crossings of the band included); samples further apart than `max_gap`
are not bridged, and the stretches without data are reported, not guessed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.measure.series import Gap, seconds, utc

_H = 3600.0


@dataclass(frozen=True)
class ZoneComfortInput:
    """One zone's temperature samples (aware datetime, degC) and its comfort band in degC."""

    zone_id: str
    temperatures: Sequence[tuple[datetime, float]]
    low_c: float
    high_c: float
    max_gap: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low_c) and math.isfinite(self.high_c)):
            raise ValueError(f"zones[{self.zone_id}].low_c/high_c: must be finite numbers")
        if self.low_c > self.high_c:
            raise ValueError(
                f"zones[{self.zone_id}].low_c: {self.low_c} is above high_c {self.high_c}"
            )


@dataclass(frozen=True)
class ZoneComfortResult:
    """Comfort violation of one zone over a window: degC·h outside the band, and data gaps."""

    zone_id: str
    violation_degc_h: float
    above_degc_h: float
    below_degc_h: float
    max_excursion_c: float
    gaps: tuple[Gap, ...]


def _excess_area(e0: float, e1: float, hours: float) -> float:
    """Integral of max(0, e) for e linear from e0 to e1 over `hours`."""
    if e0 >= 0 and e1 >= 0:
        return (e0 + e1) / 2 * hours
    if e0 <= 0 and e1 <= 0:
        return 0.0
    pos, neg = max(e0, e1), min(e0, e1)
    return pos * pos / (2 * (pos - neg)) * hours


def zone_comfort(zone: ZoneComfortInput, start: datetime, end: datetime) -> ZoneComfortResult:
    """Degree-hours outside `zone`'s band over `[start, end)`, linear between samples."""
    a, b = utc(start, "start"), utc(end, "end")
    pts: list[tuple[datetime, float]] = []
    for i, (ts, temp) in enumerate(zone.temperatures):
        t = utc(ts, f"zones[{zone.zone_id}].temperatures[{i}].ts")
        if not math.isfinite(temp):
            raise ValueError(f"zones[{zone.zone_id}].temperatures[{i}].value: not finite")
        if pts and t <= pts[-1][0]:
            raise ValueError(
                f"zones[{zone.zone_id}].temperatures[{i}].ts: not after the previous sample"
            )
        pts.append((t, float(temp)))
    above = below = worst = 0.0
    gaps: list[Gap] = []
    cursor = a
    for (t0, v0), (t1, v1) in itertools.pairwise(pts):
        if t1 - t0 > zone.max_gap:
            continue
        lo, hi = max(t0, a), min(t1, b)
        if hi <= lo:
            continue
        if lo > cursor:
            gaps.append(Gap(cursor, lo))
        span = seconds(t1 - t0)
        w0, w1 = lo, hi
        u0 = v0 + (v1 - v0) * seconds(w0 - t0) / span
        u1 = v0 + (v1 - v0) * seconds(w1 - t0) / span
        hours = seconds(w1 - w0) / _H
        above += _excess_area(u0 - zone.high_c, u1 - zone.high_c, hours)
        below += _excess_area(zone.low_c - u0, zone.low_c - u1, hours)
        for u in (u0, u1):
            worst = max(worst, u - zone.high_c, zone.low_c - u)
        cursor = max(cursor, hi)
    if cursor < b:
        gaps.append(Gap(cursor, b))
    return ZoneComfortResult(zone.zone_id, above + below, above, below, worst, tuple(gaps))
