"""Rebound after an event: the highest 15-min import in a window after the event end, and its
excess over the baseline (kW, import positive)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.measure.baseline import BaselineResult
from vpp.measure.series import DEFAULT_STEP, IntervalAverage, StepSeries, utc


@dataclass(frozen=True)
class Rebound:
    """The rebound peak in `[window_start, window_end)`.

    `peak_kw` is the highest interval-average import, at `peak_start`; `baseline_kw` the
    baseline in that interval and `excess_kw` = peak − baseline (`None` without a baseline
    there). `missing` counts the window's intervals without metered data; `reason` says why
    there is no peak when there is none.
    """

    window_start: datetime
    window_end: datetime
    peak_start: datetime | None
    peak_kw: float | None
    baseline_kw: float | None
    excess_kw: float | None
    missing: int
    reason: str | None = None


def rebound_peak(
    site: StepSeries,
    *,
    event_end: datetime,
    baseline: BaselineResult | None = None,
    window: timedelta = timedelta(hours=2),
    step: timedelta = DEFAULT_STEP,
) -> Rebound:
    """Highest `step` average of `site` import in the `window` after `event_end`.

    For the excess, the baseline profile must cover the window: make it with
    `x_of_y_baseline(..., profile_end=event_end + window)`. The first interval with the
    highest value wins a tie.
    """
    start = utc(event_end, "event_end")
    end = start + window
    profile = site.on_grid(start, end, step=step)
    known = [p for p in profile if p.kw is not None]
    missing = len(profile) - len(known)
    if not known:
        return Rebound(
            start, end, None, None, None, None, missing, "no metered data after the event"
        )
    peak = max(known, key=lambda p: (p.kw, -p.start.timestamp()))
    base_kw: float | None = None
    if baseline is not None:
        base_kw = _at(baseline.adjusted, peak)
    excess = None if base_kw is None or peak.kw is None else peak.kw - base_kw
    reason = None if base_kw is not None or baseline is None else "baseline does not cover the peak"
    return Rebound(start, end, peak.start, peak.kw, base_kw, excess, missing, reason)


def _at(profile: tuple[IntervalAverage, ...], interval: IntervalAverage) -> float | None:
    series = StepSeries.from_intervals(profile, name="baseline")
    return series.average(interval.start, interval.end).kw
