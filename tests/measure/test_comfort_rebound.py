"""Comfort degC·h on hand-computed shapes, and the rebound peak after an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vpp.measure.baseline import BaselineResult
from vpp.measure.comfort import ZoneComfortInput, zone_comfort
from vpp.measure.rebound import rebound_peak
from vpp.measure.series import IntervalAverage, StepSeries

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
Q = timedelta(minutes=15)


def test_triangle_excursion_above_the_band() -> None:
    # 24 → 28 → 24 degC over an hour, band 22–26: above the band from 06:15 to 06:45, peak
    # 2 degC at 06:30. Area = ½ · 0.5 h · 2 degC = 0.5 degC·h.
    temps = [(T0 + k * Q, t) for k, t in enumerate([24.0, 26.0, 28.0, 26.0, 24.0])]
    r = zone_comfort(ZoneComfortInput("z", temps, 22.0, 26.0), T0, T0 + 4 * Q)
    assert r.violation_degc_h == pytest.approx(0.5)
    assert r.above_degc_h == pytest.approx(0.5) and r.below_degc_h == 0
    assert r.max_excursion_c == pytest.approx(2.0)
    assert r.gaps == ()


def test_triangle_with_band_crossings_between_samples() -> None:
    # Samples only every 30 min: 24 at 06:00, 28 at 06:30, 24 at 07:00. The crossings at
    # 06:15 and 06:45 fall between samples; the linear curve gives the same 0.5 degC·h.
    temps = [(T0, 24.0), (T0 + 2 * Q, 28.0), (T0 + 4 * Q, 24.0)]
    zone = ZoneComfortInput("z", temps, 22.0, 26.0, max_gap=timedelta(minutes=30))
    assert zone_comfort(zone, T0, T0 + 4 * Q).violation_degc_h == pytest.approx(0.5)
    # Half the window: only the rising half of the triangle, 0.25 degC·h.
    assert zone_comfort(zone, T0, T0 + 2 * Q).violation_degc_h == pytest.approx(0.25)


def test_below_the_band_counts_too_and_gaps_are_reported() -> None:
    # 21 degC flat for 30 min under a 22 degC floor: 1 degC · 0.5 h; then a 1 h hole.
    temps = [(T0, 21.0), (T0 + Q, 21.0), (T0 + 2 * Q, 21.0), (T0 + 6 * Q, 21.0)]
    r = zone_comfort(ZoneComfortInput("z", temps, 22.0, 26.0), T0, T0 + 6 * Q)
    assert r.below_degc_h == pytest.approx(0.5)
    assert [(g.start, g.end) for g in r.gaps] == [(T0 + 2 * Q, T0 + 6 * Q)]


def test_band_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"zones\[z\]\.low_c"):
        ZoneComfortInput("z", [], 26.0, 22.0)


def test_rebound_peak_and_excess_over_baseline() -> None:
    end = T0
    site = StepSeries(
        [(end + k * Q, v) for k, v in enumerate([100, 130, 140, 120, 110, 100, 100, 100, 300])],
        max_hold=Q,
    )
    prof = tuple(IntervalAverage(end + k * Q, Q, 100.0 + k) for k in range(8))
    r = rebound_peak(site, event_end=end, baseline=BaselineResult("b", prof, prof))
    # The 300 kW at 08:00 is outside the default 2 h window.
    assert r.peak_start == end + 2 * Q and r.peak_kw == 140
    assert r.baseline_kw == 102 and r.excess_kw == 38
    assert r.missing == 0 and r.reason is None
    longer = rebound_peak(site, event_end=end, window=timedelta(hours=3))
    assert longer.peak_kw == 300 and longer.excess_kw is None and longer.missing == 3


def test_rebound_without_data_says_so() -> None:
    r = rebound_peak(StepSeries([]), event_end=T0)
    assert r.peak_kw is None and r.missing == 8 and r.reason == "no metered data after the event"
