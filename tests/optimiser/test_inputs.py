"""Bad input fails at the edge with an error naming the field; failures inside the planner
give the fallback plan, never an exception."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import optimiser.planner as planner_module
from optimiser import BatteryAsset, EvSession, Planner, ThermalZoneAsset
from tests.optimiser.check import check_schedule
from tests.optimiser.factory import at, problem


def _error(fn: object) -> str:
    with pytest.raises(ValidationError) as info:
        fn()  # type: ignore[operator]
    return str(info.value)


def test_series_of_the_wrong_length_names_the_field() -> None:
    msg = _error(lambda: problem(8, [], site_kw={"import_price": [0.1] * 7}))
    assert "site.import_price: has 7 values, the grid has 8 steps" in msg


def test_zone_series_of_the_wrong_length_names_the_asset_field() -> None:
    z = ThermalZoneAsset(
        id="z", r_k_per_kw=5.0, c_kwh_per_k=1.0, cop=3.0, max_kw=2.0, temp_c=24.0,
        comfort_min_c=[22.0] * 4, comfort_max_c=[26.0] * 4, internal_gain_kw=[1.0] * 3,
    )  # fmt: skip
    assert "assets[0].internal_gain_kw" in _error(lambda: problem(4, [z]))


def test_duplicate_asset_ids_are_rejected() -> None:
    ev = EvSession(id="x", arrival_step=0, departure_step=2, energy_kwh=1.0, max_kw=7.0)
    assert "assets[1].id: duplicate id 'x'" in _error(lambda: problem(4, [ev, ev]))


def test_unknown_field_and_nan_are_rejected() -> None:
    assert "capacity" in _error(
        lambda: BatteryAsset(id="b", capacity=10.0, charge_max_kw=1.0, discharge_max_kw=1.0)
    )
    assert "import_limit_kw" in _error(
        lambda: problem(4, [], site_kw={"import_limit_kw": float("nan")})
    )


def test_battery_soc_above_capacity_is_rejected() -> None:
    msg = _error(
        lambda: BatteryAsset(
            id="b", capacity_kwh=10.0, charge_max_kw=1.0, discharge_max_kw=1.0, soc_kwh=11.0
        )
    )
    assert "soc_kwh above capacity_kwh" in msg


def test_curtail_event_needs_a_baseline() -> None:
    from optimiser import DrEvent

    ev = DrEvent(kind="curtail_kw", start=at(0), end=at(2), value=5.0)
    assert "baseline_kw" in _error(lambda: problem(4, [], events=[ev]))


def test_model_that_cannot_be_built_gives_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> object:
        raise RuntimeError("model build failed")

    monkeypatch.setattr(planner_module, "PyomoLp", broken)
    ev = EvSession(id="ev", arrival_step=0, departure_step=4, energy_kwh=5.0, max_kw=7.0)
    p = problem(4, [ev])
    s = Planner().plan(p)
    assert s.fallback and "model build failed" in s.reason
    assert s.power_kw["ev"] == pytest.approx([7.0] * 4)
    check_schedule(p, s)
