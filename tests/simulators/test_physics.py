"""Physics of each device kind, stepped directly (no servers)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from building.params import (
    BatteryParams,
    CurtailableLoadParams,
    EvChargerParams,
    EvSessionSpec,
    HvacZoneParams,
    PvParams,
)
from building.weather import Environment, EnvironmentParams
from devices.profile import Kind
from simulators.battery import BatterySim
from simulators.ev_charger import EvChargerSim
from simulators.hvac import MODE_HEAT, HvacZoneSim
from simulators.loads import CurtailableLoadSim, PvSim
from simulators.models import parse_params

T0 = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)


def run(model: BatterySim | EvChargerSim | HvacZoneSim, seconds: int, dt: float = 1.0) -> None:
    for k in range(int(seconds / dt)):
        model.step(dt, T0 + timedelta(seconds=k * dt))


# -- battery ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-150, 150), st.integers(1, 900)), min_size=1, max_size=8),
    st.floats(0.8, 1.0),
    st.floats(0.8, 1.0),
)
def test_battery_energy_balance_holds(
    plan: list[tuple[float, int]], eta_c: float, eta_d: float
) -> None:
    p = BatteryParams(
        capacity_kwh=50, charge_efficiency=eta_c, discharge_efficiency=eta_d, initial_soc_pct=50
    )
    bat = BatterySim(p)
    bat.write("control_mode", 1, 0.0)
    e0 = bat.energy_kwh
    for setpoint, seconds in plan:
        bat.write("power_setpoint_kw", setpoint, 0.0)
        for _ in range(seconds // 10):
            bat.step(10.0, T0)
            assert -p.max_discharge_kw - 1e-9 <= bat.power_kw <= p.max_charge_kw + 1e-9
            assert max(p.soc_min_pct, p.soc_reserve_pct) - 1e-9 <= bat.soc_pct
            assert bat.soc_pct <= p.soc_max_pct + 1e-9
    expected = e0 + eta_c * bat.charged_kwh - bat.discharged_kwh / eta_d
    assert bat.energy_kwh == pytest.approx(expected, abs=1e-9)


def test_battery_follows_its_setpoint_and_stops_at_the_soc_limit() -> None:
    bat = BatterySim(BatteryParams(capacity_kwh=100, initial_soc_pct=50, charge_efficiency=0.9))
    run(bat, 60)
    assert bat.power_kw == 0  # local mode: idle
    bat.write("control_mode", 1, 0.0)
    bat.write("power_setpoint_kw", 40.0, 0.0)
    run(bat, 3600)
    # 1 h at 40 kW stores 36 kWh: 50 % + 36 % = 86 %.
    assert bat.soc_pct == pytest.approx(86.0)
    assert bat.power_kw == pytest.approx(40.0)
    run(bat, 3600)
    assert bat.soc_pct == pytest.approx(95.0)
    assert bat.power_kw == 0
    assert bat.read()["state"] == 5  # FULL
    bat.write("power_setpoint_kw", -500.0, 0.0)  # beyond max_discharge_kw
    run(bat, 1)
    assert bat.power_kw == pytest.approx(-100.0)


# -- EV charger --------------------------------------------------------------------------


def test_ev_gets_what_it_needs_never_more_nor_faster_than_its_limits() -> None:
    sessions = [
        EvSessionSpec(arrival=600.0, departure=7800.0, energy_needed_kwh=10, vehicle_max_kw=7),
        EvSessionSpec(arrival=9000.0, departure=10800.0, energy_needed_kwh=40, vehicle_max_kw=22),
    ]
    ev = EvChargerSim(EvChargerParams(default_limit_kw=11, sessions=sessions), T0)
    powers: list[float] = []
    for k in range(4 * 3600):
        ev.step(1.0, T0 + timedelta(seconds=k))
        powers.append(ev.power_kw)
        if k == 9000 + 600:
            ev.write("power_limit_kw", 5.5, float(k))
        t = k + 1
        if t <= 600 or 7800 < t <= 9000:
            assert ev.power_kw == 0
        if t < 600 or 7800 <= t < 9000:
            assert ev.read()["state"] == 0 and not ev.plugged
    assert max(powers[:7800]) == pytest.approx(7.0)  # vehicle max below the 11 kW limit
    assert ev.delivered_kwh[0] == pytest.approx(10.0)  # full, then stops
    assert powers[600 + 5200] == 0 and ev.read()["session_energy_kwh"] > 0
    # Second car: 10 min at 11 kW, then 20 min at 5.5 kW, then it leaves (not full).
    assert max(powers[9000:]) == pytest.approx(11.0)
    assert ev.delivered_kwh[1] == pytest.approx(11 * 600 / 3600 + 5.5 * 1200 / 3600, abs=0.01)
    assert ev.delivered_kwh[1] < 40


@pytest.mark.parametrize(("counter", "second_reads"), [("per_session", 5.0), ("cumulative", 15.0)])
def test_ev_session_counter_resets_at_plug_in_or_keeps_counting(
    counter: str, second_reads: float
) -> None:
    """Two cars (10 and 5 kWh): `per_session` reads 0 when the second plugs in, then its
    own 5 kWh; `cumulative` goes on from 10 to 15. Each car still gets only its need."""
    sessions = [
        EvSessionSpec(arrival=0.0, departure=3600.0, energy_needed_kwh=10, vehicle_max_kw=11),
        EvSessionSpec(arrival=4000.0, departure=7200.0, energy_needed_kwh=5, vehicle_max_kw=11),
    ]
    ev = EvChargerSim(EvChargerParams(session_counter=counter, sessions=sessions), T0)
    run(ev, 3700)
    assert ev.read()["session_energy_kwh"] == pytest.approx(10.0)  # held after departure
    run_from = 3700
    for k in range(run_from, 7200):
        ev.step(1.0, T0 + timedelta(seconds=k))
    assert ev.read()["session_energy_kwh"] == pytest.approx(second_reads)
    assert ev.delivered_kwh == [pytest.approx(10.0), pytest.approx(5.0)]


def test_ev_below_the_minimum_current_does_not_charge() -> None:
    spec = EvSessionSpec(arrival=0.0, departure=3600.0, energy_needed_kwh=30)
    ev = EvChargerSim(EvChargerParams(min_power_kw=4.1, sessions=[spec]), T0)
    ev.write("power_limit_kw", 3.0, 0.0)
    run(ev, 60)
    assert ev.power_kw == 0 and ev.read()["state"] == 1  # connected, not charging


def test_ev_sessions_may_be_given_as_datetimes() -> None:
    spec = EvSessionSpec(
        arrival=T0 + timedelta(hours=1), departure=T0 + timedelta(hours=2), energy_needed_kwh=5
    )
    assert spec.window(T0) == (3600.0, 7200.0)
    with pytest.raises(ValidationError, match="departure must be after arrival"):
        EvSessionSpec(arrival=100.0, departure=50.0)
    with pytest.raises(ValidationError, match="sessions\\[1\\] arrives before"):
        EvChargerParams(
            sessions=[
                EvSessionSpec(arrival=0.0, departure=100.0),
                EvSessionSpec(arrival=50.0, departure=200.0),
            ]
        )


# -- thermal zone ------------------------------------------------------------------------


def _flat_env(outdoor_c: float) -> Environment:
    series = [(T0, outdoor_c), (T0 + timedelta(days=2), outdoor_c)]
    return Environment(EnvironmentParams(outdoor_temp_series=series, irradiance_series=[(T0, 0.0)]))


def test_zone_step_is_exactly_the_1r1c_equation() -> None:
    p = HvacZoneParams(r_k_per_kw=2, c_kwh_per_k=10, cop=3, initial_temp_c=26, max_power_kw=1)
    zone = HvacZoneSim(p, _flat_env(33.0))
    zone.step(900.0, T0)  # 15 min; the 1 kW unit cannot reach 24 degC: runs flat out
    a = math.exp(-0.25 / (2 * 10))
    expected = a * 26 + (1 - a) * (33 + 2 * (8.0 + 0.0 - 3 * 1.0))
    assert zone.power_kw == pytest.approx(1.0)
    assert zone.temp_c == pytest.approx(expected, abs=1e-12)


def test_zone_with_enough_cooling_settles_at_its_setpoint() -> None:
    zone = HvacZoneSim(HvacZoneParams(initial_temp_c=29, max_power_kw=20), _flat_env(35.0))
    zone.write("setpoint_c", 25.0, 0.0)
    run(zone, 7200, dt=60)
    assert zone.temp_c == pytest.approx(25.0, abs=1e-6)
    # Steady state: P = (T_out - T_sp + R·Q) / (R·COP) = (10 + 16) / 7 kW.
    assert zone.power_kw == pytest.approx(26 / 7, rel=1e-6)
    assert zone.power_kw <= zone.p.max_power_kw


def test_zone_without_enough_cooling_drifts_toward_outdoor() -> None:
    p = HvacZoneParams(initial_temp_c=24, internal_gains_kw=0.0, solar_gain_factor=0)
    zone = HvacZoneSim(p, _flat_env(34.0))
    zone.write("power_limit_kw", 0.0, 0.0)
    temps = []
    for _ in range(48):
        run(zone, 3600, dt=300)
        temps.append(zone.temp_c)
        assert zone.power_kw == 0
    assert all(b > a for a, b in itertools.pairwise(temps))
    tau_h = p.r_k_per_kw * p.c_kwh_per_k
    assert temps[-1] == pytest.approx(34 - 10 * math.exp(-48 / tau_h), abs=1e-6)
    assert temps[-1] < 34


def test_zone_in_heat_mode_heats() -> None:
    zone = HvacZoneSim(HvacZoneParams(initial_temp_c=15, internal_gains_kw=0.0), _flat_env(5.0))
    zone.write("mode", MODE_HEAT, 0.0)
    zone.write("setpoint_c", 21.0, 0.0)
    run(zone, 7200, dt=60)
    assert zone.temp_c == pytest.approx(21.0, abs=1e-6)
    assert zone.power_kw == pytest.approx((21 - 5) / 2 / 3.5, rel=1e-6)


# -- PV, loads, environment ----------------------------------------------------------------


def test_pv_produces_negative_power_capped_by_its_limit() -> None:
    env = Environment(EnvironmentParams(irradiance_series=[(T0, 1000.0)]))
    pv = PvSim(PvParams(rated_kw=100, derate=0.9), env)
    pv.step(1.0, T0)
    assert pv.power_kw == pytest.approx(-90.0)
    pv.write("limit_pct", 40, 0.0)
    pv.step(1.0, T0)
    assert pv.power_kw == pytest.approx(-40.0)


def test_default_summer_day_in_local_time() -> None:
    env = Environment()  # Asia/Shanghai, 27..35 degC, sun 05:00-19:00
    noon_local = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    assert env.irradiance_w_m2(noon_local) == pytest.approx(900.0)
    assert env.irradiance_w_m2(datetime(2026, 7, 15, 16, 0, tzinfo=UTC)) == 0  # midnight
    assert env.outdoor_temp_c(datetime(2026, 7, 15, 7, 0, tzinfo=UTC)) == pytest.approx(35.0)
    assert env.outdoor_temp_c(datetime(2026, 7, 14, 19, 0, tzinfo=UTC)) == pytest.approx(27.0)


def test_shapes_constant_daily_and_series() -> None:
    env = Environment(EnvironmentParams(timezone="UTC"))
    assert env.shape(5.0, T0) == 5.0
    hourly = [float(h) for h in range(24)]
    assert env.shape(hourly, T0 + timedelta(hours=7, minutes=30)) == pytest.approx(7.5)
    assert env.shape(hourly, T0 + timedelta(hours=23, minutes=30)) == pytest.approx(11.5)
    series = [(T0, 0.0), (T0 + timedelta(hours=2), 20.0)]
    assert env.shape(series, T0 + timedelta(minutes=30)) == pytest.approx(5.0)
    assert env.shape(series, T0 + timedelta(hours=5)) == pytest.approx(20.0)
    load = CurtailableLoadSim(CurtailableLoadParams(power_kw=hourly, shed_power_kw=2), env)
    load.step(1.0, T0 + timedelta(hours=10))
    assert load.power_kw == pytest.approx(10.0)
    load.write("shed", 1, 0.0)
    load.step(1.0, T0 + timedelta(hours=10))
    assert load.power_kw == pytest.approx(2.0)


def test_params_are_strict_and_name_the_field() -> None:
    with pytest.raises(ValidationError, match="capacity_kwh"):
        parse_params(Kind.battery, {"capacity_kwh": -1})
    with pytest.raises(ValidationError, match="capcity_kwh"):
        parse_params(Kind.battery, {"capcity_kwh": 10})
    assert isinstance(parse_params(Kind.hvac, None), HvacZoneParams)
    with pytest.raises(ValidationError, match="timezone"):
        EnvironmentParams(timezone="Mars/Olympus")


def test_daily_sessions_come_back_every_day() -> None:
    spec = EvSessionSpec(arrival=8 * 3600.0, departure=18 * 3600.0, energy_needed_kwh=22)
    ev = EvChargerSim(EvChargerParams(repeat_daily=True, sessions=[spec]), T0)
    per_day = [0.0, 0.0, 0.0]
    for k in range(0, 3 * 86400, 60):
        ev.step(60.0, T0 + timedelta(seconds=k))
        per_day[k // 86400] += ev.power_kw / 60
        if k % 86400 == 9 * 3600:  # full after 2 h at 11 kW
            assert ev.plugged and ev.read()["state"] == 2
        if k % 86400 == 20 * 3600:
            assert not ev.plugged and ev.read()["session_energy_kwh"] == pytest.approx(22)
    assert per_day == pytest.approx([22.0, 22.0, 22.0])
    with pytest.raises(ValidationError, match="fit within 24 h"):
        EvChargerParams(repeat_daily=True, sessions=[EvSessionSpec(arrival=0.0, departure=90000.0)])
