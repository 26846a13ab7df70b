"""Registry by site-file type, the example driver, and capability adapters over real drivers."""

from __future__ import annotations

import pytest

from devices.capabilities import (
    Battery,
    BatteryLimits,
    BatteryTelemetry,
    CurtailableLoad,
    CurtailableLoadTelemetry,
    EvChargerLimits,
    MeterTelemetry,
    ReadsPower,
    ReadsSoc,
    Sheddable,
    TakesPowerSetpoint,
    TelemetryError,
    ThermalZone,
    ThermalZoneLimits,
    ThermalZoneTelemetry,
    telemetry,
)
from devices.clock import VirtualClock
from devices.driver import Driver, PointError, Reading
from devices.example_driver import ConstantLoadDriver
from devices.modbus_driver import ModbusDriver
from devices.mqtt_driver import MqttDriver
from devices.mqtt_hub import MqttHub, MqttSettings
from devices.poller import Poller
from devices.profile import Kind, MqttProfile, load_profile, profile_dir
from devices.registry import DeviceSpec, DriverContext, RegistryError, create_driver, driver_types
from tests.devices.conftest import ServeFn, bundled


def test_every_kind_and_the_example_are_registered() -> None:
    types = driver_types()
    for kind in Kind:
        assert kind.value in types
    assert {"modbus", "mqtt", "constant_load"} <= set(types)


def test_registry_builds_by_transport_and_names_bad_fields() -> None:
    clock = VirtualClock()
    ctx = DriverContext(clock, site="hq", mqtt_hub=MqttHub(MqttSettings("127.0.0.1"), clock=clock))
    bat = create_driver(
        DeviceSpec("b1", "battery", bundled("sunspec-battery"), host="127.0.0.1", port=1502), ctx
    )
    assert isinstance(bat, ModbusDriver) and bat.kind is Kind.battery
    assert isinstance(bat, Driver)
    mqtt_profile = load_profile(profile_dir() / "ev-charger-mqtt.yaml")
    ev = create_driver(DeviceSpec("ev1", "ev_charger", mqtt_profile), ctx)
    assert isinstance(ev, MqttDriver) and ev.telemetry_topic == "vpp/hq/ev1/telemetry"
    with pytest.raises(RegistryError, match=r"devices\.x\.type: unknown type 'toaster'"):
        create_driver(DeviceSpec("x", "toaster"), ctx)
    with pytest.raises(RegistryError, match=r"devices\.m\.profile: sunspec-battery is a battery"):
        create_driver(DeviceSpec("m", "meter", bundled("sunspec-battery"), host="h", port=1), ctx)
    with pytest.raises(RegistryError, match=r"devices\.b2: a Modbus device needs host and port"):
        create_driver(DeviceSpec("b2", "modbus", bundled("sunspec-battery")), ctx)
    assert isinstance(mqtt_profile, MqttProfile)
    with pytest.raises(RegistryError, match="MQTT broker settings"):
        create_driver(DeviceSpec("ev2", "mqtt", mqtt_profile), DriverContext(clock))
    with pytest.raises(RegistryError, match=r"options\.nominal_kw"):
        create_driver(DeviceSpec("l", "constant_load"), ctx)


async def test_example_driver_runs_under_the_poller_and_sheds() -> None:
    clock = VirtualClock()
    d = create_driver(
        DeviceSpec("lights", "constant_load", options={"nominal_kw": 12}), DriverContext(clock)
    )
    assert isinstance(d, ConstantLoadDriver)
    load = CurtailableLoad(d)
    assert isinstance(load, Sheddable)
    async with Poller([d], clock=clock, period_s=5.0) as poller:
        await clock.sleep(1)
        r = poller.latest("lights")
        assert r is not None and CurtailableLoadTelemetry.from_reading(r).power_kw == 12
        await load.shed(True)
        await clock.sleep(5)
        r = poller.latest("lights")
        assert r is not None and telemetry(d.kind, r) == CurtailableLoadTelemetry(0.0, True)
    with pytest.raises(PointError, match="only shed"):
        await d.write("power_kw", 1)


async def test_battery_adapter_commands_and_telemetry_over_modbus(serve: ServeFn) -> None:
    clock = VirtualClock()
    profile = bundled("sunspec-battery")
    s = await serve(profile, clock)
    s.set("soc_pct", 80.0)
    s.set("power_kw", -20.0)
    s.set("max_charge_kw", 50.0)
    s.set("max_discharge_kw", 60.0)
    limits = BatteryLimits(max_charge_kw=30, max_discharge_kw=40, soc_reserve_pct=15)
    d = ModbusDriver(
        "bat", profile, host="127.0.0.1", port=s.port, clock=clock, limits=limits.point_limits()
    )
    bat = Battery(d)
    assert isinstance(bat, TakesPowerSetpoint)
    res = await bat.set_power_kw(-100.0)  # discharge beyond the site's 40 kW
    assert (res.written, res.clamped, res.verified) == (-40.0, True, True)
    assert s.get("control_mode") == 1.0
    reserve = await d.write("soc_reserve_pct", 5)
    assert reserve.written == 15.0
    t = telemetry(Kind.battery, await d.read())
    assert isinstance(t, BatteryTelemetry)
    assert isinstance(t, ReadsPower) and isinstance(t, ReadsSoc)
    assert (t.soc_pct, t.power_kw, t.power_setpoint_kw) == (80.0, -20.0, -40.0)
    assert (t.max_charge_kw, t.max_discharge_kw, t.soc_reserve_pct) == (50.0, 60.0, 15.0)
    await d.close()


async def test_thermal_zone_adapter_clamps_to_the_comfort_band(serve: ServeFn) -> None:
    clock = VirtualClock()
    profile = bundled("hvac-zone")
    s = await serve(profile, clock)
    s.set("zone_temp_c", 23.4)
    band = ThermalZoneLimits(min_setpoint_c=20, max_setpoint_c=26, max_power_kw=80)
    d = ModbusDriver(
        "z1", profile, host="127.0.0.1", port=s.port, clock=clock, limits=band.point_limits()
    )
    zone = ThermalZone(d)
    assert (await zone.set_zone_c(28.0)).written == 26.0
    assert (await zone.limit_power_kw(120.0)).written == 80.0
    t = ThermalZoneTelemetry.from_reading(await d.read())
    assert t.zone_temp_c == 23.4  # no binary noise from raw 234 × 0.1
    assert (t.setpoint_c, t.power_limit_kw, t.on) == (26.0, 80.0, True)
    await d.close()


def test_limits_and_telemetry_refuse_bad_input_by_name() -> None:
    with pytest.raises(ValueError, match=r"battery\.max_charge_kw"):
        BatteryLimits(max_charge_kw=-1, max_discharge_kw=1)
    with pytest.raises(ValueError, match="min_setpoint_c is above"):
        ThermalZoneLimits(min_setpoint_c=25, max_setpoint_c=20)
    assert EvChargerLimits(11).point_limits() == {"power_limit_kw": (0.0, 11.0)}
    clock = VirtualClock()
    r = Reading("m", clock.now(), 0.0, {"import_power_kw": -3.0})
    with pytest.raises(TelemetryError, match="m: reading has no point import_energy_kwh"):
        MeterTelemetry.from_reading(r)
