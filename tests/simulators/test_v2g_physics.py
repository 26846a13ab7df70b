"""The V2G charger's physics: a signed setpoint within its limits, SoC integrated with the
efficiency each way, full and hardware-floor stops, sessions, and the watchdog fallback."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from simulators.v2g_charger import V2gChargerParams, V2gChargerSim, V2gSessionSpec

T0 = datetime.fromisoformat("2026-07-15T08:00:00+08:00")
H = timedelta(hours=1)


def sim(**kw: float) -> V2gChargerSim:
    session = V2gSessionSpec(
        arrival=T0 + H, departure=T0 + 5 * H, capacity_kwh=50, arrival_soc_pct=50,
        departure_soc_pct=70,
    )  # fmt: skip
    return V2gChargerSim(V2gChargerParams(sessions=[session], **kw))


def run(s: V2gChargerSim, start: datetime, hours: float, step_s: float = 60.0) -> None:
    t = start
    for _ in range(int(hours * 3600 / step_s)):
        s.step(step_s, t)
        t += timedelta(seconds=step_s)


def test_no_car_no_power_then_the_session_arrives_with_its_soc() -> None:
    s = sim()
    run(s, T0, 1.0)
    assert s.read()["plugged"] == 0.0 and s.power_kw == 0.0
    s.step(60, T0 + H)
    r = s.read()
    assert r["plugged"] == 1.0 and r["departure_soc_pct"] == 70 and r["vehicle_capacity_kwh"] == 50


def test_discharge_and_charge_follow_the_setpoint_with_losses() -> None:
    s = sim(efficiency=0.9, max_discharge_kw=10)
    s.step(60, T0 + H)
    soc0 = s.soc_pct
    s.write("power_setpoint_kw", -15, 0.0)  # beyond the charger's 10 kW: clamped
    run(s, T0 + H + timedelta(minutes=1), 0.5)
    assert s.power_kw == pytest.approx(-10)
    # 5 kWh out of the AC side took 5 / 0.9 kWh out of the car.
    assert s.soc_pct == pytest.approx(soc0 - 5 / 0.9 / 50 * 100)
    assert s.read()["session_net_energy_kwh"] == pytest.approx(
        -5 + 11 / 60
    )  # after a first minute at the default 11 kW
    s.write("power_setpoint_kw", 20, 0.0)
    soc1 = s.soc_pct
    run(s, T0 + 2 * H, 0.5)
    assert s.soc_pct == pytest.approx(soc1 + 10 * 0.9 / 50 * 100)


def test_stops_at_full_and_at_the_hardware_floor_not_at_the_departure_soc() -> None:
    s = sim(hardware_min_soc_pct=20)
    s.step(60, T0 + H)
    s.write("power_setpoint_kw", -20, 0.0)
    run(s, T0 + H, 3.0)
    assert s.soc_pct == pytest.approx(20, abs=1e-6)  # under the driver's 70 %: the car can
    assert s.power_kw == pytest.approx(0.0, abs=1e-6)
    s.write("power_setpoint_kw", 20, 0.0)
    run(s, T0 + H, 3.9)
    assert s.soc_pct == pytest.approx(100, abs=1e-6) and s.power_kw == pytest.approx(0, abs=1e-6)


def test_watchdog_falls_back_to_charging_and_the_departed_soc_is_kept() -> None:
    s = sim(default_kw=7, default_watchdog_s=60)
    s.step(60, T0 + H)
    s.write("power_setpoint_kw", -10, 0.0)
    assert not s.check_watchdog(30.0)
    assert s.check_watchdog(60.0) and s.setpoint_kw == 7
    run(s, T0 + H, 4.0)
    s.step(60, T0 + 5 * H)
    assert s.read()["plugged"] == 0.0
    assert s.departed_soc_pct[T0 + 5 * H] == pytest.approx(s.soc_pct)
