"""Site files: the bundled one loads; each kind of mistake fails naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
        (lambda d: d.pop("site_id"), "site_id: Field required"),
        (lambda d: d.update(devices=[]), "devices: List should have at least 1 item"),
        (lambda d: d["broker"].update(port="x"), "broker.port: Input should be a valid integer"),
        (lambda d: d["grid"].update(extensions="yes"), "grid.extensions: Input should be a valid"),
        (lambda d: d["grid"].update(extras=True), "grid.extras: Extra inputs are not permitted"),
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
    assert (b.host, b.port, b.tls, b.client_id) == ("localhost", 8884, True, "vpp-office-1")
    assert BrokerConfig.from_url("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError, match="--broker"):
        BrokerConfig.from_url("http://x:1")


def test_grid_extensions_default_off_and_on_in_the_example(tmp_path: Path) -> None:
    """A site file without `grid` publishes exactly the contract; the bundled office turns the
    extension on (its replays read the reports' notes)."""
    assert load_site(OFFICE).config.grid.extensions is True
    path = _write(tmp_path, lambda d: d.pop("grid"))
    assert load_site(path).config.grid.extensions is False
