"""Property tests (bounded): energy is conserved by interval averaging, and the event's
delivered_ratio is the requested-energy-weighted mean of the interval ratios."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.measure.baseline import BaselineResult
from vpp.measure.report import EventInterval, EventSpec, build_report
from vpp.measure.series import IntervalAverage, StepSeries

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
Q = timedelta(minutes=15)
kw = st.floats(min_value=-500, max_value=500, allow_nan=False, allow_infinity=False)


@st.composite
def samples(draw: st.DrawFn) -> list[tuple[datetime, float]]:
    gaps = draw(st.lists(st.integers(min_value=1, max_value=1800), min_size=0, max_size=40))
    out = [(T0, draw(kw))]
    t = T0
    for g in gaps:
        t += timedelta(seconds=g)
        if t >= T0 + 2 * timedelta(hours=1):
            break
        out.append((t, draw(kw)))
    return out


@settings(max_examples=150, deadline=None)
@given(samples(), st.integers(min_value=60, max_value=3600))
def test_interval_averages_integrate_to_the_series_energy(
    pts: list[tuple[datetime, float]], hold_s: int
) -> None:
    s = StepSeries(pts, max_hold=timedelta(seconds=hold_s))
    start, end = T0, T0 + timedelta(hours=2)
    kwh, covered = s.integral(start, end)
    cells = s.on_grid(start, end, min_coverage=0.0)
    from_cells = math.fsum(c.kw * c.coverage * c.hours for c in cells if c.kw is not None)
    assert math.isclose(from_cells, kwh, rel_tol=1e-9, abs_tol=1e-6)
    if covered == end - start:
        full = [c.energy_kwh for c in cells]
        assert all(e is not None for e in full)
        assert math.isclose(
            math.fsum(e for e in full if e is not None),
            s.energy_kwh(start, end),
            rel_tol=1e-9,
            abs_tol=1e-6,
        )


interval = st.tuples(
    st.sampled_from([1, 2, 4]),  # duration in quarter hours
    st.floats(min_value=0, max_value=300),  # event value (kW)
    st.floats(min_value=0, max_value=400),  # baseline (kW)
    st.floats(min_value=0, max_value=400),  # actual import (kW)
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["curtail_kw", "import_cap_kw"]), st.lists(interval, min_size=1, max_size=8))
def test_delivered_ratio_is_the_energy_weighted_mean_of_interval_ratios(
    signal: str, rows: list[tuple[int, float, float, float]]
) -> None:
    ivs, base, site = [], [], []
    t = T0
    for quarters, value, b, a in rows:
        ivs.append(EventInterval(t, quarters * Q, value))
        base.append(IntervalAverage(t, quarters * Q, b))
        site.append((t, a))
        t += quarters * Q
    rep = build_report(
        EventSpec("p", 0, signal, tuple(ivs)),  # type: ignore[arg-type]
        baseline=BaselineResult("b", tuple(base), tuple(base)),
        site=StepSeries(site, max_hold=timedelta(hours=1)),
    )
    weighted = [
        (r.ratio, r.requested_kw * r.hours)
        for r in rep.intervals
        if r.ratio is not None and r.requested_kw is not None and r.requested_kw > 0
    ]
    total = math.fsum(w for _, w in weighted)
    if total > 1e-9:
        expected = math.fsum(x * w for x, w in weighted) / total
        assert rep.delivered_ratio is not None
        assert math.isclose(rep.delivered_ratio, expected, rel_tol=1e-9, abs_tol=1e-9)
    for r in rep.intervals:
        assert r.delivered_kw is not None and r.baseline_kw is not None and r.actual_kw is not None
        assert math.isclose(r.delivered_kw, r.baseline_kw - r.actual_kw, abs_tol=1e-9)
