"""A whole simulated site on the virtual clock: meter, speed and determinism."""

from __future__ import annotations

import time

import pytest
from pymodbus.client import AsyncModbusTcpClient

from building.params import (
    BaseLoadParams,
    BatteryParams,
    EvChargerParams,
    EvSessionSpec,
    HvacZoneParams,
    PvParams,
)
from devices.clock import VirtualClock
from devices.codec import decode
from devices.profile import ModbusProfile
from simulators.site import SimDeviceSpec, SimulatedSite
from tests.simulators.conftest import profile


def twenty_devices() -> list[SimDeviceSpec]:
    """A meter, 4 batteries, 6 chargers, 6 zones, 2 PV arrays, 1 load group."""
    specs = [SimDeviceSpec("meter", profile("site-meter"))]
    for i in range(4):
        specs.append(SimDeviceSpec(f"bat{i}", profile("sunspec-battery"), BatteryParams()))
    for i in range(6):
        sessions = [EvSessionSpec(arrival=300.0 * i, departure=3000.0 + 100 * i)]
        specs.append(
            SimDeviceSpec(
                f"ev{i}", profile("ev-charger-modbus"), EvChargerParams(sessions=sessions)
            )
        )
    for i in range(6):
        params = HvacZoneParams(initial_temp_c=26 + i * 0.5)
        specs.append(SimDeviceSpec(f"zone{i}", profile("hvac-zone"), params))
    specs.append(SimDeviceSpec("pv0", profile("pv-inverter"), PvParams(rated_kw=80)))
    specs.append(SimDeviceSpec("pv1", profile("pv-inverter"), PvParams(rated_kw=40)))
    specs.append(SimDeviceSpec("load0", profile("curtailable-load")))
    return specs


async def run_hour(seed: int) -> tuple[list[float], float]:
    """Meter trace (every simulated minute) of one hour, and the wall seconds it took."""
    clock = VirtualClock()
    base = BaseLoadParams(peak_kw=120, noise_kw=3)
    site = SimulatedSite(clock, twenty_devices(), base_load=base, seed=seed)
    trace: list[float] = []
    async with site:
        assert len(site.endpoints()) == 20
        site.devices["bat0"].model.write("control_mode", 1, 0.0)
        site.devices["bat0"].model.write("power_setpoint_kw", 30.0, 0.0)
        wall = time.perf_counter()
        for _ in range(60):
            await clock.sleep(60)
            trace.append(site.meter_kw())
        wall = time.perf_counter() - wall
        assert site.steps == 3600
    return trace, wall


async def test_an_hour_of_twenty_devices_is_deterministic() -> None:
    # Its speed is a benchmark's (bench/replay.py), not a timed test's: on a shared machine a
    # wall-time bound fails with the load, not with the code.
    a, _ = await run_hour(seed=7)
    b, _ = await run_hour(seed=7)
    c, _ = await run_hour(seed=8)
    assert a == b
    assert a != c


async def test_meter_sums_every_device_and_the_base_load() -> None:
    clock = VirtualClock()
    specs = [
        SimDeviceSpec("meter", profile("site-meter")),
        SimDeviceSpec("bat", profile("sunspec-battery"), BatteryParams()),
        SimDeviceSpec("pv", profile("pv-inverter"), PvParams(rated_kw=100)),
        SimDeviceSpec("zone", profile("hvac-zone"), HvacZoneParams()),
    ]
    base = BaseLoadParams(peak_kw=50, shape=1.0)
    async with SimulatedSite(clock, specs, base_load=base) as site:
        await clock.sleep(4 * 3600)  # 04:00 UTC is noon in Shanghai: the sun is up
        state = site.state()
        parts = 50 + sum(state[d]["power_kw"] for d in ("bat", "pv", "zone"))
        assert state["pv"]["power_kw"] < -50
        assert site.meter_kw() == pytest.approx(parts)
        assert state["meter"]["import_power_kw"] == pytest.approx(parts)
        assert state["meter"]["import_energy_kwh"] > 0
        ep = next(e for e in site.endpoints() if e.id == "meter")
        prof = profile("site-meter")
        assert isinstance(prof, ModbusProfile)
        async with AsyncModbusTcpClient("127.0.0.1", port=ep.port, timeout=2, retries=0) as c:
            rr = await c.read_input_registers(0, count=6, device_id=1)
            assert not rr.isError()
            kw = decode(prof.points["import_power_kw"], rr.registers[0:2], "little")
            assert kw == pytest.approx(site.meter_kw(), rel=1e-6)
            kwh = decode(prof.points["import_energy_kwh"], rr.registers[2:4], "little")
            assert kwh == pytest.approx(state["meter"]["import_energy_kwh"], abs=0.05)


async def test_several_unit_ids_share_a_fixed_port() -> None:
    from tests.conftest import free_port

    port = free_port()
    clock = VirtualClock()
    specs = [
        SimDeviceSpec(
            "a", profile("sunspec-battery"), BatteryParams(initial_soc_pct=20), port=port
        ),
        SimDeviceSpec(
            "b", profile("sunspec-battery"), BatteryParams(initial_soc_pct=80), port=port, unit_id=2
        ),
    ]
    async with SimulatedSite(clock, specs) as site:
        assert {(e.port, e.unit_id) for e in site.endpoints()} == {(port, 1), (port, 2)}
        async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0) as c:
            a = await c.read_holding_registers(40006, count=1, device_id=1)
            b = await c.read_holding_registers(40006, count=1, device_id=2)
            assert (a.registers, b.registers) == ([200], [800])
            missing = await c.read_holding_registers(40006, count=1, device_id=3)
            assert missing.isError() and missing.exception_code == 11


def test_bad_site_input_is_refused_with_the_device_named() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="unique"):
        SimulatedSite(clock, [SimDeviceSpec("x", profile("pv-inverter"))] * 2)
    with pytest.raises(TypeError, match="BatteryParams"):
        SimulatedSite(clock, [SimDeviceSpec("x", profile("sunspec-battery"), PvParams())])


async def test_mqtt_device_without_broker_is_refused() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match=r"devices\.ev: an MQTT device needs a broker"):
        async with SimulatedSite(clock, [SimDeviceSpec("ev", profile("ev-charger-mqtt"))]):
            pass
