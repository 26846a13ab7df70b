"""Registry by site-file type, the example driver, and capability adapters over real drivers."""

from __future__ import annotations

import pytest

from devices.clock import VirtualClock
from devices.driver import Driver, PointError
from devices.example_driver import ConstantLoadDriver
from devices.modbus_driver import ModbusDriver
from devices.mqtt_driver import MqttDriver
from devices.mqtt_hub import MqttHub, MqttSettings
from devices.poller import Poller
from devices.profile import Kind, MqttProfile, load_profile, profile_dir
from devices.registry import DeviceSpec, DriverContext, RegistryError, create_driver, driver_types
from tests.devices.conftest import bundled


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
    async with Poller([d], clock=clock, period_s=5.0) as poller:
        await clock.sleep(1)
        r = poller.latest("lights")
        assert r is not None and r.values["power_kw"] == 12
        await d.write("shed", 1.0)
        await clock.sleep(5)
        r = poller.latest("lights")
        assert r is not None and (r.values["power_kw"], r.values["shed"]) == (0.0, 1.0)
    with pytest.raises(PointError, match="only shed"):
        await d.write("power_kw", 1)
