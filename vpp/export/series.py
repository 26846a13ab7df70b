"""Stored telemetry windows on an export's interval grid: energy and mean power per interval.

A stored window holds its mean from its start until the next window of the same series, at
most `hold` seconds: the store's window length, or the series' usual spacing when that is
longer (a device read less often than the store's resolution). A longer silence stays a
gap, shown by the interval's `coverage` (the fraction of it with data) rather than filled.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vpp.measure.series import StepSeries

DEFAULT_WINDOW_S = 60.0
"""The store's default window (the site file's `store.telemetry_resolution_s`)."""


@dataclass(frozen=True)
class Interval:
    """One interval of the export's grid, `[start, end)` in unix seconds."""

    start: float
    end: float


@dataclass(frozen=True)
class IntervalEnergy:
    """What a power series gives one interval: energy (kWh, consumption positive), the mean
    power over the part with data (kW) and that part's share of the interval (0..1)."""

    energy_kwh: float | None
    mean_kw: float | None
    coverage: float


def grid(start: float, end: float, step_s: float) -> list[Interval]:
    """Back-to-back intervals from `start`; the last one ends at `end` (it may be short)."""
    out = []
    t = start
    while t < end:
        out.append(Interval(t, min(t + step_s, end)))
        t += step_s
    return out


def hold_s(times: Sequence[float], window_s: float | None) -> float:
    """How long each window of a series holds its mean: the larger of the store's window
    (`DEFAULT_WINDOW_S` when unknown) and the series' most common spacing."""
    base = window_s or DEFAULT_WINDOW_S
    gaps = Counter(round(b - a, 3) for a, b in itertools.pairwise(times) if b > a)
    if not gaps:
        return base
    usual = max(gaps.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return max(base, usual)


def interval_energy(
    samples: Sequence[tuple[float, float]], intervals: Sequence[Interval], hold: float
) -> list[IntervalEnergy]:
    """Integrate a power series (window start unix s, mean kW; oldest first) over each
    interval (vpp.measure's step series: a window straddling two intervals is split)."""
    series = StepSeries(
        ((datetime.fromtimestamp(t, UTC), kw) for t, kw in samples),
        max_hold=timedelta(seconds=hold),
    )
    out = []
    for iv in intervals:
        a, b = datetime.fromtimestamp(iv.start, UTC), datetime.fromtimestamp(iv.end, UTC)
        kwh, covered = series.integral(a, b)
        if covered <= timedelta(0):
            out.append(IntervalEnergy(None, None, 0.0))
            continue
        mean = kwh / (covered.total_seconds() / 3600.0)
        out.append(IntervalEnergy(kwh, mean, min(covered / (b - a), 1.0)))
    return out


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A figure for a file: rounded, no -0.0, None for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return None
    r = round(value, digits)
    return 0.0 if r == 0 else r
