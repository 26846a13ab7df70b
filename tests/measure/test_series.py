"""Step-hold series: interval averages, gaps and energy, checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vpp.measure.series import StepSeries, ceil_to, floor_to, grid

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def test_step_hold_average_is_time_weighted() -> None:
    # 10 kW for 5 min, 20 kW for 5 min, 30 kW for 5 min: (50 + 100 + 150) / 15 = 20 kW.
    s = StepSeries([(T0, 10), (T0 + 5 * M, 20), (T0 + 10 * M, 30)])
    avg = s.average(T0, T0 + 15 * M)
    assert avg.kw == pytest.approx(20.0)
    assert avg.coverage == 1.0
    assert avg.energy_kwh == pytest.approx(5.0)


def test_uneven_samples_weight_by_time_not_count() -> None:
    # Three samples in the first minute at 100 kW, then 0 kW for 14 minutes.
    s = StepSeries([(T0, 100), (T0 + 20 * timedelta(seconds=1), 100), (T0 + M, 0)])
    assert s.average(T0, T0 + 15 * M).kw == pytest.approx(100 / 15)


def test_gaps_are_reported_not_filled() -> None:
    s = StepSeries([(T0, 10), (T0 + 40 * M, 20)], max_hold=15 * M)
    cells = s.on_grid(T0, T0 + 60 * M)
    assert [c.kw for c in cells] == [10, None, None, None]
    assert [round(c.coverage, 6) for c in cells] == [1.0, 0.0, round(1 / 3, 6), round(2 / 3, 6)]
    # With a lower bar the partly covered interval averages only what is known.
    assert s.average(T0 + 30 * M, T0 + 45 * M, min_coverage=0.3).kw == 20
    gaps = s.gaps(T0, T0 + 60 * M)
    assert [(g.start, g.end) for g in gaps] == [
        (T0 + 15 * M, T0 + 40 * M),
        (T0 + 55 * M, T0 + 60 * M),
    ]
    with pytest.raises(ValueError, match="gaps"):
        s.energy_kwh(T0, T0 + 60 * M)
    assert s.energy_kwh(T0, T0 + 15 * M) == pytest.approx(2.5)


def test_series_rejects_bad_samples_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"site\[1\]\.ts: naive"):
        StepSeries([(T0, 1), (datetime(2026, 7, 15, 7), 2)], name="site")
    with pytest.raises(ValueError, match=r"site\[1\]\.ts: .* not after"):
        StepSeries([(T0, 1), (T0, 2)], name="site")
    with pytest.raises(ValueError, match=r"site\[0\]\.value"):
        StepSeries([(T0, float("nan"))], name="site")


def test_dst_spring_forward_integrates_real_elapsed_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 01:00 CET and 03:00 CEST on 29 March 2026 are one real hour apart.
    a = datetime(2026, 3, 29, 1, 0, tzinfo=berlin)
    b = datetime(2026, 3, 29, 3, 0, tzinfo=berlin)
    s = StepSeries([(a, 10.0), (b, 0.0)], max_hold=timedelta(hours=2))
    assert s.energy_kwh(a, b) == pytest.approx(10.0)
    assert len(grid(a, b)) == 4


def test_grid_helpers() -> None:
    t = T0 + 7 * M
    assert floor_to(t) == T0
    assert ceil_to(t) == T0 + 15 * M
    assert ceil_to(T0) == T0
    with pytest.raises(ValueError, match="end"):
        grid(T0, T0 + 7 * M)
