"""Two formulations must agree: the Pyomo model (solved through APPSI HiGHS) and the same LP
built with highspy's arrays; and the bulk Param push must equal APPSI's own update."""

from __future__ import annotations

import numpy as np
import pytest
from pyomo.environ import Var

from optimiser import (
    BatteryAsset,
    CurtailableLoadAsset,
    DrEvent,
    EvSession,
    Planner,
    ThermalZoneAsset,
)
from optimiser.blocks import to_blocks
from optimiser.layout import make_data, make_layout
from optimiser.reference import RawHighsLp
from tests.optimiser.factory import at, problem

N = 16


def mixed(shift: float = 0.0) -> object:
    prices = [0.1 + 0.05 * ((t + shift) % 5) for t in range(N)]
    assets = [
        BatteryAsset(
            id="b", capacity_kwh=30.0, charge_max_kw=10.0, discharge_max_kw=12.0,
            soc_kwh=5.0 + shift, final_soc_kwh=10.0, terminal_value=0.05,
        ),
        EvSession(
            id="e", arrival_step=1 + int(shift), departure_step=12, energy_kwh=20.0, max_kw=11.0
        ),
        ThermalZoneAsset(
            id="z", r_k_per_kw=8.0, c_kwh_per_k=1.5, cop=3.5, max_kw=4.0, temp_c=25.5 + shift,
            comfort_min_c=[22.0] * N, comfort_max_c=[25.0] * N, internal_gain_kw=[1.2] * N,
        ),
        CurtailableLoadAsset(
            id="c", load_kw=[8.0] * N, max_shed_kw=4.0, max_duration_h=1.0, cost=0.2
        ),
    ]  # fmt: skip
    ev = DrEvent(kind="curtail_kw", start=at(6), end=at(9), value=10.0 + shift)
    # An import target above what the site would take: its soft floor binds.
    target = DrEvent(kind="import_target_kw", start=at(11), end=at(13), value=45.0 + shift)
    return problem(
        N, assets, price=prices, events=[ev, target], baseline_kw=[40.0] * N,
        site_kw={
            "demand_charge": 0.3 + shift, "pv_kw": [15.0 + shift] * N,
            "export_limit_kw": 3.0 + shift, "import_limit_kw": 200.0 - shift,
            "peak_so_far_kw": 5.0 * shift,
        },
    )  # fmt: skip


def reference_objective(p: object) -> float:
    lay = make_layout(p, to_blocks(p))  # type: ignore[arg-type]
    return RawHighsLp(lay, make_data(p, lay)).solve()  # type: ignore[arg-type]


def test_pyomo_and_highspy_formulations_agree() -> None:
    p = mixed()
    s = Planner().plan(p)  # type: ignore[arg-type]
    assert s.objective == pytest.approx(reference_objective(p), rel=1e-6)


def test_replan_and_raw_warm_resolve_agree() -> None:
    pl = Planner()
    pl.plan(mixed())  # type: ignore[arg-type]
    p2 = mixed(shift=1.0)
    s2 = pl.plan(p2)  # type: ignore[arg-type]
    lay = make_layout(mixed(), to_blocks(mixed()))  # type: ignore[arg-type]
    raw = RawHighsLp(lay, make_data(mixed(), lay))  # type: ignore[arg-type]
    raw.solve()
    lay2 = make_layout(p2, to_blocks(p2))  # type: ignore[arg-type]
    raw.update(make_data(p2, lay2))  # type: ignore[arg-type]
    assert s2.objective == pytest.approx(raw.solve(), rel=1e-6)


def test_bulk_push_equals_appsi_update() -> None:
    pl = Planner()
    pl.plan(mixed())  # type: ignore[arg-type]
    pl.plan(mixed(shift=1.5))  # type: ignore[arg-type]
    session = pl._session
    assert session is not None
    h = session.opt._solver_model

    def snapshot() -> list[np.ndarray]:
        lp = h.getLp()
        return [
            np.array(x) for x in (lp.col_lower_, lp.col_upper_, lp.col_cost_, lp.row_lower_,
                                  lp.row_upper_)
        ]  # fmt: skip

    ours = snapshot()
    # APPSI recomputes every mutable bound, rhs and cost from the Pyomo model itself.
    session.opt.update_variables(list(session.lp.model.component_data_objects(Var)))
    session.opt.update_params()
    theirs = snapshot()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
