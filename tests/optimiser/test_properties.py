"""Property tests: any valid input gives a schedule that satisfies every asset constraint
(re-integrated independently, tests/optimiser/check.py); impossible inputs still give a plan."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimiser import (
    BatteryAsset,
    CurtailableLoadAsset,
    DrEvent,
    EvSession,
    Planner,
    Problem,
    SolverOptions,
    ThermalZoneAsset,
)
from tests.optimiser.check import check_schedule
from tests.optimiser.factory import at, problem

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
num = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@st.composite
def batteries(draw: Any, i: int) -> BatteryAsset:
    cap = draw(st.floats(min_value=1.0, max_value=100.0))
    lo = draw(st.floats(min_value=0.0, max_value=cap))
    hi = draw(st.floats(min_value=lo, max_value=cap))
    return BatteryAsset(
        id=f"b{i}",
        capacity_kwh=cap,
        charge_max_kw=draw(num),
        discharge_max_kw=draw(num),
        charge_efficiency=draw(st.floats(min_value=0.7, max_value=1.0)),
        discharge_efficiency=draw(st.floats(min_value=0.7, max_value=1.0)),
        soc_min_kwh=lo,
        soc_max_kwh=hi,
        soc_kwh=draw(st.floats(min_value=0.0, max_value=cap)),  # may start outside the band
        final_soc_kwh=draw(st.none() | st.floats(min_value=0.0, max_value=cap)),
        terminal_value=draw(st.floats(min_value=0.0, max_value=0.5)),
    )


@st.composite
def evs(draw: Any, i: int, n: int) -> EvSession:
    arr = draw(st.integers(min_value=0, max_value=n + 2))
    return EvSession(
        id=f"e{i}",
        arrival_step=arr,
        departure_step=draw(st.integers(min_value=arr, max_value=n + 6)),
        energy_kwh=draw(st.floats(min_value=0.0, max_value=60.0)),
        max_kw=draw(num),
    )


@st.composite
def zones(draw: Any, i: int, n: int) -> ThermalZoneAsset:
    lo = draw(st.lists(st.floats(min_value=18.0, max_value=24.0), min_size=n, max_size=n))
    width = draw(st.floats(min_value=0.0, max_value=5.0))
    return ThermalZoneAsset(
        id=f"z{i}",
        r_k_per_kw=draw(st.floats(min_value=2.0, max_value=20.0)),
        c_kwh_per_k=draw(st.floats(min_value=0.1, max_value=5.0)),
        cop=draw(st.floats(min_value=2.0, max_value=5.0)),
        max_kw=draw(st.floats(min_value=0.0, max_value=10.0)),
        mode=draw(st.sampled_from(["cooling", "heating"])),
        temp_c=draw(st.floats(min_value=15.0, max_value=32.0)),
        comfort_min_c=lo,
        comfort_max_c=[x + width for x in lo],
        internal_gain_kw=draw(st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n)),
    )


@st.composite
def curtailables(draw: Any, i: int, n: int) -> CurtailableLoadAsset:
    return CurtailableLoadAsset(
        id=f"c{i}",
        load_kw=draw(st.lists(st.floats(0.0, 20.0), min_size=n, max_size=n)),
        max_shed_kw=draw(st.floats(0.0, 20.0)),
        max_duration_h=draw(st.floats(0.0, 3.0)),
        cost=draw(st.floats(0.0, 2.0)),
    )


@st.composite
def problems(draw: Any, impossible: bool = False) -> Problem:
    n = draw(st.integers(min_value=2, max_value=12))
    assets: list[Any] = []
    for i in range(draw(st.integers(0, 2))):
        assets.append(draw(batteries(i)))
    for i in range(draw(st.integers(0, 2))):
        assets.append(draw(evs(i, n)))
    for i in range(draw(st.integers(0, 2))):
        assets.append(draw(zones(i, n)))
    for i in range(draw(st.integers(0, 1))):
        assets.append(draw(curtailables(i, n)))
    prices = draw(st.lists(st.floats(-0.5, 1.0), min_size=n, max_size=n))
    base = draw(st.lists(st.floats(0.0, 80.0), min_size=n, max_size=n))
    limit = draw(st.floats(0.0, 60.0) if impossible else st.floats(100.0, 400.0))
    events = []
    if draw(st.booleans()):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        kind = draw(
            st.sampled_from(["curtail_kw", "import_cap_kw", "price", "export_cap_kw", "carbon"])
        )
        values = {"price": st.floats(-1.0, 2.0), "carbon": st.floats(0.0, 2.0)}
        value = draw(values.get(kind, st.floats(0.0, 100.0)))
        events.append(DrEvent(kind=kind, start=at(a), end=at(b), value=value))
    site_kw = {
        "base_load_kw": base,
        "pv_kw": draw(st.lists(st.floats(0.0, 60.0), min_size=n, max_size=n)),
        "outdoor_temp_c": draw(st.lists(st.floats(-5.0, 40.0), min_size=n, max_size=n)),
        "import_limit_kw": limit,
        "export_limit_kw": draw(st.floats(0.0, 100.0)),
        "demand_charge": draw(st.floats(0.0, 2.0)),
    }
    return problem(n, assets, price=prices, events=events, baseline_kw=base, site_kw=site_kw)


@SETTINGS
@given(problems())
def test_every_schedule_satisfies_every_asset_constraint(p: Problem) -> None:
    s = Planner().plan(p)
    assert not s.fallback, s.reason
    check_schedule(p, s)
    assert s.cost.total == s.objective
    for ev in p.events:
        if ev.kind == "export_cap_kw":
            steps = range(p.grid.step_of(ev.start), -((p.grid.start - ev.end) // p.grid.step))
            assert all(s.site_import_kw[t] >= -ev.value - 1e-6 for t in steps), ev


@SETTINGS
@given(problems(impossible=True))
def test_impossible_inputs_still_get_a_valid_plan(p: Problem) -> None:
    s = Planner().plan(p)  # import limit below the load, any EV / comfort need: no exception
    check_schedule(p, s)


@settings(max_examples=15, deadline=None, database=None)
@given(problems(impossible=True))
def test_solver_failure_returns_the_fallback_not_an_exception(p: Problem) -> None:
    q = p.model_copy(update={"solver": SolverOptions(time_limit_s=1e-9)})
    s = Planner().plan(q)
    assert s.fallback and s.status == "fallback" and s.reason.startswith("solver")
    check_schedule(q, s)
