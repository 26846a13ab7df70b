"""Per-step targets from overlapping events, and the requested-kW arithmetic."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.grid.messages import Event
from vpp.grid.targets import (
    POWER_SIGNALS,
    import_limit_kw,
    interval_ratio,
    requested_kw,
    step_target,
    step_targets,
)

H14 = datetime(2026, 7, 15, 14, 0, tzinfo=UTC)
M15 = timedelta(minutes=15)
S5 = timedelta(seconds=5)


def mk(event_id: str, signal: str, ivs: list[tuple[int, int, float]], **kw: Any) -> Event:
    """An event with intervals given as (start minute after 14:00, minutes, value)."""
    return Event.model_validate(
        {
            "v": 1,
            "event_id": event_id,
            "modification": kw.pop("modification", 0),
            "signal": signal,
            "intervals": [
                {
                    "start": H14 + timedelta(minutes=a),
                    "duration": timedelta(minutes=d),
                    "value": v,
                }
                for a, d, v in ivs
            ],
            **kw,
        }
    )


POWER = set(POWER_SIGNALS)


def at(minute: float) -> datetime:
    return H14 + timedelta(minutes=minute)


CURTAIL = mk("a", "curtail_kw", [(0, 30, 50), (30, 30, 80)], priority=2)
CAP = mk("b", "import_cap_kw", [(15, 30, 200)], priority=1)
CAP_LOW_PRIO = mk("c", "import_cap_kw", [(0, 60, 100)], priority=5)
UNNUMBERED = mk("d", "curtail_kw", [(0, 60, 500)])
PRICE = mk("p", "price", [(0, 60, 0.9)], priority=0)
TEST = mk("t", "curtail_kw", [(0, 60, 999)], priority=0, test=True)
CANCELLED = mk("x", "curtail_kw", [(0, 60, 999)], priority=0, cancelled=True, modification=1)

# (case, events, sample minute, expected (signal, value, event_id)) on the 5 s control cycle
POINT: list[tuple[str, list[Event], float, tuple[str | None, float | None, str | None]]] = [
    ("nothing active", [CURTAIL], -1, (None, None, None)),
    ("first interval", [CURTAIL], 0, ("curtail_kw", 50, "a")),
    ("second interval", [CURTAIL], 45, ("curtail_kw", 80, "a")),
    ("after the end", [CURTAIL], 60, (None, None, None)),
    ("priority 1 beats 2", [CURTAIL, CAP], 20, ("import_cap_kw", 200, "b")),
    ("input order irrelevant", [CAP, CURTAIL], 20, ("import_cap_kw", 200, "b")),
    ("before the cap starts", [CURTAIL, CAP], 10, ("curtail_kw", 50, "a")),
    ("after the cap ends", [CURTAIL, CAP], 50, ("curtail_kw", 80, "a")),
    ("lower priority loses", [CURTAIL, CAP_LOW_PRIO], 5, ("curtail_kw", 50, "a")),
    ("no priority ranks last", [UNNUMBERED, CAP_LOW_PRIO], 5, ("import_cap_kw", 100, "c")),
    ("no priority alone applies", [UNNUMBERED], 5, ("curtail_kw", 500, "d")),
    ("price does not displace power", [PRICE, CURTAIL], 5, ("curtail_kw", 50, "a")),
    ("test events never act", [TEST, CURTAIL], 5, ("curtail_kw", 50, "a")),
    ("cancelled events never act", [CANCELLED], 5, (None, None, None)),
]


@pytest.mark.parametrize(
    ("events", "minute", "expected"), [c[1:] for c in POINT], ids=[c[0] for c in POINT]
)
def test_control_cycle_targets(
    events: list[Event], minute: float, expected: tuple[str | None, float | None, str | None]
) -> None:
    t = step_target(events, at(minute), S5)
    assert (t.signal, t.value_kw, t.event_id) == expected
    assert t.coverage == (1.0 if expected[0] else 0.0)


def test_equal_priority_stricter_wins() -> None:
    soft = mk("s1", "curtail_kw", [(0, 60, 30)], priority=1)
    hard = mk("s2", "curtail_kw", [(0, 60, 70)], priority=1)
    assert step_target([soft, hard], H14, S5).value_kw == 70
    low_cap = mk("c1", "import_cap_kw", [(0, 60, 90)], priority=1)
    high_cap = mk("c2", "import_cap_kw", [(0, 60, 120)], priority=1)
    assert step_target([high_cap, low_cap], H14, S5).event_id == "c1"


def test_price_is_resolved_separately() -> None:
    cheap = mk("p2", "price", [(0, 60, 0.2)], priority=3)
    t = step_target([PRICE, cheap, CURTAIL], at(5), S5)
    assert (t.price, t.price_coverage, t.signal) == (0.9, 1.0, "curtail_kw")


def test_15_minute_step_partly_covered_is_energy_weighted() -> None:
    late = mk("l", "curtail_kw", [(5, 10, 60)])  # 14:05–14:15: two thirds of the step
    t = step_target([late], H14, M15)
    assert t.coverage == pytest.approx(2 / 3)
    assert t.value_kw == pytest.approx(40.0)  # 60 kW × 10 min / 15 min
    assert [(s.start, s.end) for s in t.segments] == [(at(5), at(15))]


def test_15_minute_step_split_between_priorities() -> None:
    # 14:10–14:25 step: curtail "a" (prio 2) for 5 min, cap "b" (prio 1) from 14:15 for 10.
    t = step_target([CURTAIL, CAP], at(10), M15)
    assert [(s.event_id, s.start, s.end) for s in t.segments] == [
        ("a", at(10), at(15)),
        ("b", at(15), at(25)),
    ]
    assert (t.signal, t.value_kw, t.event_id) == ("import_cap_kw", 200, "b")
    assert t.coverage == pytest.approx(2 / 3)


def test_cap_takes_lowest_within_step() -> None:
    steps = mk("k", "import_cap_kw", [(0, 5, 300), (5, 10, 150)])
    assert step_target([steps], H14, M15).value_kw == 150


def test_horizon_of_steps() -> None:
    ts = step_targets([CURTAIL, CAP], at(-15), M15, 6)
    assert [t.start for t in ts] == [at(m) for m in (-15, 0, 15, 30, 45, 60)]
    assert [t.signal for t in ts] == [
        None,
        "curtail_kw",
        "import_cap_kw",
        "import_cap_kw",
        "curtail_kw",
        None,
    ]
    assert [t.value_kw for t in ts] == [None, 50, 200, 200, 80, None]


def test_step_length_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        step_target([CURTAIL], H14, timedelta(0))


@pytest.mark.parametrize(
    ("signal", "value", "baseline", "requested", "limit"),
    [
        ("curtail_kw", 50.0, 300.0, 50.0, 250.0),
        ("curtail_kw", 0.0, 300.0, 0.0, 300.0),
        ("import_cap_kw", 200.0, 300.0, 100.0, 200.0),
        ("import_cap_kw", 400.0, 300.0, 0.0, 400.0),
        ("price", 0.9, 300.0, 0.0, None),
    ],
)
def test_requested_kw_per_contract(
    signal: Any, value: float, baseline: float, requested: float, limit: float | None
) -> None:
    assert requested_kw(signal, value, baseline) == requested
    assert import_limit_kw(signal, value, baseline) == limit


@pytest.mark.parametrize(
    ("signal", "value", "baseline", "actual", "ratio"),
    [
        ("curtail_kw", 50.0, 300.0, 260.0, 0.8),
        ("curtail_kw", 50.0, 300.0, 240.0, 1.2),
        ("import_cap_kw", 200.0, 300.0, 250.0, 0.5),
        ("import_cap_kw", 400.0, 300.0, 390.0, 1.0),  # baseline under cap, stayed under
        ("import_cap_kw", 400.0, 300.0, 410.0, 0.0),  # baseline under cap, went over
        ("curtail_kw", 0.0, 300.0, 300.0, None),
        ("price", 1.0, 300.0, 250.0, None),
    ],
)
def test_interval_ratio(
    signal: Any, value: float, baseline: float, actual: float, ratio: float | None
) -> None:
    got = interval_ratio(signal, value, baseline, actual)
    assert got == (pytest.approx(ratio) if ratio is not None else None)


_ivs = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 40), st.integers(0, 500)), min_size=1, max_size=4
)


@st.composite
def _events(draw: st.DrawFn) -> list[Event]:
    out = []
    for k in range(draw(st.integers(1, 4))):
        t, ivs = -20, []
        for gap, length, value in draw(_ivs):
            t += gap
            ivs.append((t, length, value))
            t += length
        signal = draw(
            st.sampled_from(["curtail_kw", "import_cap_kw", "price", "export_cap_kw", "carbon"])
        )
        if signal == "carbon":  # kg CO2/kWh: 0…5
            ivs = [(a, n, v / 100) for a, n, v in ivs]
        prio = draw(st.none() | st.integers(0, 3))
        out.append(mk(f"e{k}", signal, ivs, priority=prio))
    return out


@settings(max_examples=150, deadline=None)
@given(_events(), st.integers(-30, 120), st.sampled_from([5, 60, 900]))
def test_resolution_properties(events: list[Event], minute: int, step_s: int) -> None:
    start, length = at(minute), timedelta(seconds=step_s)
    t = step_target(events, start, length)
    assert 0.0 <= t.coverage <= 1.0 + 1e-9 and 0.0 <= t.price_coverage <= 1.0 + 1e-9
    for kind in (POWER, {"price"}, {"export_cap_kw"}, {"carbon"}):
        segs = [s for s in t.segments if s.signal in kind]
        assert all(start <= s.start < s.end <= start + length for s in segs)
        assert all(a.end <= b.start for a, b in itertools.pairwise(segs))
    # At the step's start, the power winner is the best-ranked active power event.
    active = []
    for e in events:
        for iv in e.intervals:
            if e.signal in POWER and iv.start <= start < iv.end:
                strict = -iv.value if e.signal == "curtail_kw" else iv.value
                active.append((e.priority if e.priority is not None else 99, strict, e.event_id))
    first = [s for s in t.segments if s.signal in POWER and s.start == start]
    assert [s.event_id for s in first] == ([min(active)[2]] if active else [])


def test_export_caps_and_carbon_resolve_beside_the_power_request() -> None:
    events = [
        mk("cut", "curtail_kw", [(0, 30, 100.0)]),
        mk("x-loose", "export_cap_kw", [(0, 30, 40.0)]),
        mk("x-tight", "export_cap_kw", [(10, 10, 5.0)]),
        mk("co2", "carbon", [(0, 15, 0.6), (15, 15, 0.2)]),
    ]
    t = step_target(events, H14, M15)
    # The curtailment still governs the import; the lowest cap in the step holds export.
    assert (t.signal, t.value_kw, t.event_id) == ("curtail_kw", 100.0, "cut")
    assert (t.export_cap_kw, t.export_event_id) == (5.0, "x-tight")
    assert t.carbon == pytest.approx(0.6)
    later = step_target(events, H14 + timedelta(minutes=20), M15)
    assert (later.export_cap_kw, later.export_event_id) == (40.0, "x-loose")
    assert later.carbon == pytest.approx((0.6 * 0 + 0.2 * 10) / 10)
    assert step_target(events, H14 + timedelta(minutes=40), M15).export_cap_kw is None


def test_an_import_target_is_rated_by_how_close_the_import_came() -> None:
    from vpp.grid.targets import interval_ratio, requested_kw

    assert requested_kw("import_target_kw", 100.0, 80.0) == 0.0
    assert interval_ratio("import_target_kw", 100.0, 80.0, 100.0) == 1.0
    assert interval_ratio("import_target_kw", 100.0, 80.0, 90.0) == pytest.approx(0.9)
    assert interval_ratio("import_target_kw", 100.0, 80.0, 110.0) == pytest.approx(0.9)
    assert interval_ratio("import_target_kw", 100.0, 80.0, 250.0) == 0.0
    # A target of 0 kW: every kW off costs the whole ratio.
    assert interval_ratio("import_target_kw", 0.0, 80.0, 0.5) == pytest.approx(0.5)
