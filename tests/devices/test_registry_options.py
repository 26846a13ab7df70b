"""Driver types declare what a device must give: a profile or not, which options, which kinds."""

from __future__ import annotations

import pytest

from devices.clock import VirtualClock
from devices.driver import PointError
from devices.mqtt_driver import MqttDriver
from devices.mqtt_hub import MqttHub, MqttSettings
from devices.profile import Kind, MqttProfile, load_profile, profile_dir
from devices.registry import DeviceSpec, DriverContext, RegistryError, create_driver, driver_type
from devices.static_driver import StaticDriver
from tests.devices.conftest import bundled


def mqtt_charger() -> MqttProfile:
    p = load_profile(profile_dir() / "ev-charger-mqtt.yaml")
    assert isinstance(p, MqttProfile)
    return p


METER = {"import_power_kw": 300.0, "import_energy_kwh": 0.0, "export_energy_kwh": 0.0}


async def test_static_meter_needs_no_profile_and_reads_its_options() -> None:
    clock = VirtualClock()
    spec = DeviceSpec("m", "static", kind=Kind.meter, options={"values": METER})
    d = create_driver(spec, DriverContext(clock))
    assert isinstance(d, StaticDriver) and d.kind is Kind.meter and d.profile is None
    await d.start()
    assert (await d.read()).values == METER
    assert d.health.state == "online"
    with pytest.raises(PointError, match=r"m\.import_power_kw: a static device takes no commands"):
        await d.write("import_power_kw", 0)
    await d.close()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            DeviceSpec("m", "static", kind=Kind.meter, options={"values": METER, "foo": 1}),
            "devices.m.options.foo: Extra inputs are not permitted",
        ),
        (
            DeviceSpec("m", "static", kind=Kind.meter, options={"values": {"import_power_kw": 1}}),
            "devices.m.options.values: Value error, the meter points export_energy_kwh, import_",
        ),
        (
            DeviceSpec("m", "static", kind=Kind.meter),
            "devices.m.options.values: Field required",
        ),
        (
            DeviceSpec("b", "static", kind=Kind.battery, options={"values": METER}),
            "devices.b.type: the static driver runs meter devices, not battery",
        ),
        (
            DeviceSpec("l", "constant_load", options={"nominal_kw": -1}),
            "devices.l.options.nominal_kw: Input should be greater than or equal to 0",
        ),
        (DeviceSpec("b", "modbus", kind=Kind.battery), "devices.b.profile: the modbus driver"),
        (
            DeviceSpec("b", "mqtt", bundled("sunspec-battery")),
            "devices.b.driver: the mqtt driver cannot run profile 'sunspec-battery' (modbus)",
        ),
        (
            DeviceSpec(
                "b", "modbus", bundled("sunspec-battery"), host="h", port=1, options={"x": 1}
            ),
            "devices.b.options.x: Extra inputs are not permitted",
        ),
        (
            DeviceSpec(
                "b",
                "battery",
                bundled("sunspec-battery"),
                host="h",
                port=1,
                options={"telemetry_period_s": 5},
            ),
            "devices.b.options.telemetry_period_s: only an MQTT device has a telemetry period",
        ),
        (
            DeviceSpec("e", "ev_charger", mqtt_charger(), options={"telemetry_period_s": 0}),
            "devices.e.options.telemetry_period_s: Input should be greater than 0",
        ),
    ],
)
def test_bad_spec_names_the_field(spec: DeviceSpec, expected: str) -> None:
    with pytest.raises(RegistryError) as err:
        create_driver(spec, DriverContext(VirtualClock()))
    assert expected in str(err.value)


def test_driver_types_say_what_they_need() -> None:
    modbus, static = driver_type("modbus"), driver_type("static")
    assert modbus is not None and modbus.needs_profile and modbus.transport == "modbus"
    assert static is not None and not static.needs_profile and static.kinds == {Kind.meter}
    assert driver_type("toaster") is None


def test_an_mqtt_devices_telemetry_period_is_a_site_option() -> None:
    clock = VirtualClock()
    hub = MqttHub(MqttSettings("127.0.0.1", 1), clock=clock)  # never connected
    spec = DeviceSpec("e", "ev_charger", mqtt_charger(), options={"telemetry_period_s": 7})
    d = create_driver(spec, DriverContext(clock, mqtt_hub=hub))
    assert isinstance(d, MqttDriver)
    assert d._stale_after() == 21.0  # three of its periods, not the 10 s fallback
