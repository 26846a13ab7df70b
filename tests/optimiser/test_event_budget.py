"""Sheddable loads as flexibility with a price (dr_only, cost, longest shed, rest) and the
battery kept for known events: the plan's side of issue 12 points 1 and 2."""

from __future__ import annotations

import pytest

from optimiser import BatteryAsset, CurtailableLoadAsset, DrEvent, Planner
from tests.optimiser.check import check_schedule
from tests.optimiser.factory import at, problem

N = 24
PEAK = [0.2] * 8 + [1.5] * 8 + [0.2] * 8  # a price above the shed cost from step 8 to 16


def _load(**kw: object) -> CurtailableLoadAsset:
    args: dict[str, object] = {
        "id": "pumps",
        "load_kw": [10.0] * N,
        "max_shed_kw": 10.0,
        "max_duration_h": 1.0,
        "min_rest_h": 1.0,
        "cost": 0.3,
    }
    args.update(kw)
    return CurtailableLoadAsset(**args)  # type: ignore[arg-type]


def _shed(s: object, asset: str = "pumps") -> list[float]:
    return [round(10.0 - p, 6) for p in s.power_kw[asset]]  # type: ignore[attr-defined]


def test_a_dr_only_load_is_never_shed_for_the_tariff() -> None:
    p = problem(N, [_load(dr_only=True)], price=PEAK)
    s = Planner().plan(p)
    assert max(_shed(s)) == pytest.approx(0.0, abs=1e-6)
    check_schedule(p, s)


def test_a_load_that_is_not_dr_only_is_shed_where_the_price_pays() -> None:
    # The counter-test: same problem, dr_only false; the price (1.5) is above the cost (0.3).
    p = problem(N, [_load(dr_only=False)], price=PEAK)
    s = Planner().plan(p)
    shed = _shed(s)
    assert sum(shed[8:16]) > 0 and max(shed[:8] + shed[16:]) == pytest.approx(0.0, abs=1e-6)
    check_schedule(p, s)


def test_a_dr_only_load_is_shed_for_an_event_within_its_longest_shed_and_rest() -> None:
    # A 3 h curtailment of 8 kW that only the load can meet: with at most 1 h shed in any 2 h
    # it sheds at most half of every 8-step window, and only inside the event.
    ev = DrEvent(kind="curtail_kw", start=at(4), end=at(16), value=8.0)
    p = problem(N, [_load(dr_only=True)], price=PEAK, events=[ev], baseline_kw=[30.0] * N)
    s = Planner().plan(p)
    shed = _shed(s)
    assert max(shed[:4] + shed[16:]) == pytest.approx(0.0, abs=1e-6)
    for k in range(N - 8 + 1):
        assert sum(shed[k : k + 8]) <= 40.0 + 1e-6, k
    assert sum(shed[4:16]) >= 40.0  # it is used: at least its 1 h at full shed
    assert sum(s.dr_shortfall_kw) > 0  # and the rest of the 8 kW is reported short
    check_schedule(p, s)


def test_a_resting_or_long_shed_load_starts_with_less() -> None:
    ev = DrEvent(kind="curtail_kw", start=at(0), end=at(8), value=8.0)
    rest = _load(dr_only=True, rest_left_h=0.5)
    p = problem(N, [rest], events=[ev], baseline_kw=[30.0] * N)
    assert max(_shed(Planner().plan(p))[:2]) == pytest.approx(0.0, abs=1e-6)
    long = _load(dr_only=True, shed_h=0.75)  # shed 45 min already: 15 more in the first 2 h
    p = problem(N, [long], events=[ev], baseline_kw=[30.0] * N)
    assert sum(_shed(Planner().plan(p))[:8]) == pytest.approx(10.0, abs=1e-4)


def _battery() -> BatteryAsset:
    return BatteryAsset(
        id="bat",
        capacity_kwh=40.0,
        charge_max_kw=20.0,
        discharge_max_kw=20.0,
        soc_min_kwh=4.0,
        soc_kwh=30.0,
        throughput_cost=0.01,
    )


def test_the_battery_is_kept_for_a_known_event() -> None:
    # Dear hours 8-16 before an event at 16-20 that the battery alone can serve: without the
    # event it sells into the dear hours; with it, it holds its energy until the event.
    ev = DrEvent(kind="curtail_kw", start=at(16), end=at(20), value=15.0)
    free = Planner().plan(problem(N, [_battery()], price=PEAK))
    assert min(free.power_kw["bat"][8:16]) < -1.0  # the counter-case: arbitrage
    p = problem(N, [_battery()], price=PEAK, events=[ev], baseline_kw=[20.0] * N)
    s = Planner().plan(p)
    assert min(s.power_kw["bat"][:16]) >= -1e-6
    assert max(s.dr_shortfall_kw) == pytest.approx(0.0, abs=1e-6)
    check_schedule(p, s)
