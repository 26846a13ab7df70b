"""Site files: the bundled one loads; each kind of mistake fails naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devices.clock import VirtualClock
from devices.example_driver import ConstantLoadDriver
from devices.modbus_driver import ModbusDriver
from devices.static_driver import StaticDriver
from vpp.drivers import build_drivers, mqtt_hub_for
from vpp.simsite import sim_specs
from vpp.site import BrokerConfig, SiteError, load_site

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"


def test_office_loads_with_twenty_devices_of_every_kind() -> None:
    site = load_site(OFFICE)
    assert site.id == "office-1"
    assert len(site.devices) >= 20
    kinds = {d.kind.value for d in site.devices}
    assert kinds == {"meter", "battery", "pv", "hvac", "ev_charger", "curtailable_load"}
    assert {d.profile.transport for d in site.devices} == {"modbus", "mqtt"}
    ports = [d.config.port for d in site.devices if d.profile.transport == "modbus"]
    assert len(ports) == len(set(ports)), "fixed ports must not collide"


_STATIC = {
    "id": "meter",
    "type": "meter",
    "driver": "static",
    "options": {"values": {"import_power_kw": 300, "import_energy_kwh": 0, "export_energy_kwh": 0}},
}


def _write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(OFFICE.read_text())
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda d: d["devices"][1].update(speed=3), "devices[1].speed: Extra inputs"),
        (lambda d: d["periods"].update(poll_s="fast"), "periods.poll_s: Input should be"),
        (lambda d: d["devices"][2].update(port=70000), "devices[2].port: Input should be less"),
        (lambda d: d["devices"][2].update(port=-1), "devices[2].port: Input should be greater"),
        (lambda d: d["devices"][3].update(profile="nope"), "devices[3].profile: no profile"),
        (lambda d: d["devices"][4].update(id="bat1"), "duplicate device id 'bat1'"),
        (lambda d: d["devices"][1].update(type="hvac"), "devices[1].type:"),
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone: Value error, unknown time zone"),
        (lambda d: d["devices"][1]["limits"].update(nope=[0, 1]), "devices[1].limits.nope"),
        (lambda d: d["devices"][1].update(limits={"power_setpoint_kw": [5, 1]}), "lower limit"),
        (lambda d: d["devices"][0].update(soc_reserve_pct=10), "devices[0].soc_reserve_pct"),
        # the sheddable loads' terms: only on loads, and within range
        (lambda d: d["devices"][1].update(dr_only=False), "devices[1].dr_only: only sheddable"),
        (
            lambda d: d["devices"][16].update(max_shed_min=0),
            "devices[16].max_shed_min: Input should be greater than 0",
        ),
        (
            lambda d: d["devices"][16].update(shed_cost_per_kwh=-1),
            "devices[16].shed_cost_per_kwh: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d["devices"][16].update(dr_only="sometimes"),
            "devices[16].dr_only: Input should be a valid boolean",
        ),
        (lambda d: d.pop("site_id"), "site_id: Field required"),
        (lambda d: d.update(devices=[]), "devices: List should have at least 1 item"),
        (lambda d: d["broker"].update(port="x"), "broker.port: Input should be a valid integer"),
        (lambda d: d["grid"].update(extensions="yes"), "grid.extensions: Input should be a valid"),
        (lambda d: d["grid"].update(extras=True), "grid.extras: Extra inputs are not permitted"),
        # driver, options, devices without a profile
        (lambda d: d["devices"][1].update(options={"foo": 1}), "devices[1].options.foo: Extra"),
        (lambda d: d["devices"][1].update(driver="toaster"), "devices[1].driver: no driver named"),
        (lambda d: d["devices"][1].update(driver="mqtt"), "devices[1].driver: the mqtt driver"),
        (lambda d: d["devices"][0].update(**_STATIC, foo=1), "devices[0].foo: Extra inputs"),
        (
            lambda d: d["devices"].__setitem__(0, {**_STATIC, "options": {"values": {}, "x": 1}}),
            "devices[0].options.x: Extra inputs are not permitted",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {**_STATIC, "options": {"values": {}}}),
            "devices[0].options.values: Value error, the meter points",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {"id": "m", "type": "meter", "driver": "modbus"}),
            "devices[0].profile: the modbus driver needs a profile",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {"id": "m", "type": "meter"}),
            "devices[0].profile: a device needs a profile, or a driver that needs none",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {**_STATIC, "type": "battery"}),
            "devices[0].type: the static driver runs meter devices, not battery",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {**_STATIC, "type": "toaster"}),
            "devices[0].type: 'toaster' is not a device kind",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {**_STATIC, "limits": {"x": [0, 1]}}),
            "devices[0].limits: a device without a profile has no points to limit",
        ),
        (
            lambda d: d["devices"].__setitem__(0, {**_STATIC, "soc_reserve_pct": 10}),
            "devices[0].soc_reserve_pct: only batteries",
        ),
    ],
)
def test_mistake_names_file_and_field(tmp_path: Path, mutate: object, expected: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(SiteError) as err:
        load_site(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site_id: [unclosed\n")
    with pytest.raises(SiteError, match="not valid YAML"):
        load_site(bad)
    with pytest.raises(SiteError, match="cannot read"):
        load_site(tmp_path / "missing.yaml")


def test_broker_url_overrides_site_broker() -> None:
    base = load_site(OFFICE).config.broker
    b = BrokerConfig.from_url("mqtts://localhost:8884", base)
    # The site file's other settings stay (the office sets no client id: it is derived).
    assert (b.host, b.port, b.tls, b.prefix) == ("localhost", 8884, True, "vpp")
    assert BrokerConfig.from_url("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError, match="--broker"):
        BrokerConfig.from_url("http://x:1")


def test_grid_extensions_default_off_and_on_in_the_example(tmp_path: Path) -> None:
    """A site file without `grid` publishes exactly the contract; the bundled office turns the
    extension on (its replays read the reports' notes)."""
    assert load_site(OFFICE).config.grid.extensions is True
    path = _write(tmp_path, lambda d: d.pop("grid"))
    assert load_site(path).config.grid.extensions is False


def test_driver_and_options_from_the_site_file(tmp_path: Path) -> None:
    """A meter run by the static driver (no profile), a load by constant_load with options,
    and a battery naming its default driver explicitly; each is built by the registry."""

    def mutate(d: dict) -> None:
        d["devices"][0] = _STATIC
        d["devices"][1]["driver"] = "modbus"
        d["devices"].append(
            {
                "id": "lights",
                "type": "curtailable_load",
                "driver": "constant_load",
                "options": {"nominal_kw": 12},
                "priority": 90,
            }
        )

    site = load_site(_write(tmp_path, mutate))
    meter, lights = site.device("meter"), site.device("lights")
    assert (meter.kind.value, meter.driver, meter.profile_or_none) == ("meter", "static", None)
    assert lights.kind.value == "curtailable_load" and lights.unit_id == 0
    with pytest.raises(SiteError, match=r"devices\.meter: the static driver runs no profile"):
        _ = meter.profile
    clock = VirtualClock()
    assert site.config.broker is not None
    drivers = build_drivers(site, clock, mqtt_hub_for(site, clock, site.config.broker, "t"))
    assert isinstance(drivers["meter"], StaticDriver)
    assert isinstance(drivers["lights"], ConstantLoadDriver)
    assert isinstance(drivers["bat1"], ModbusDriver)
    assert {s.id for s in sim_specs(site)} == {d.id for d in site.devices} - {"meter", "lights"}
