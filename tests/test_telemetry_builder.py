"""The agent's telemetry builder reuses a device's entry until its next reading, and publishes
exactly what the per-message builder (`telemetry_message`, through the models) would; the MQTT
link's encoder reuses an entry's JSON and sends exactly `encode`'s bytes."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.control.types import DeviceView, Snapshot
from vpp.mqtt_link import TelemetryEncoder, encode
from vpp.site import Site, load_site
from vpp.telemetry import TelemetryBuilder, telemetry_message

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"
T0 = datetime(2026, 7, 15, 6, tzinfo=UTC)


def _site(extensions: bool) -> Site:
    site = load_site(OFFICE)
    grid = site.config.grid.model_copy(update={"extensions": extensions})
    cfg = site.config.model_copy(update={"grid": grid})
    return Site(config=cfg, devices=site.devices, source=site.source)


def _snapshots(site: Site, n: int) -> Iterator[Snapshot]:
    """`n` 5-s snapshots of random readings, a device's new now and then."""
    rnd = random.Random(7)
    views: dict[str, DeviceView] = {}
    for k in range(n):
        t = T0 + timedelta(seconds=5 * k)
        for d in site.devices:
            if d.id not in views or rnd.random() < 0.2:  # a new reading now and then
                usable = rnd.random() > 0.1
                values = {
                    "power_kw": rnd.uniform(-300, 300),
                    "soc_pct": rnd.choice([55.5, 140.0, 20.0]),  # 140 %: left out, named
                    "plugged": rnd.choice([0.0, 1.0]),
                    "session_energy_kwh": rnd.uniform(0, 30),
                    "zone_temp_c": rnd.uniform(20, 28),
                    "setpoint_c": 24.0,
                    "import_power_kw": rnd.uniform(0, 700),
                }
                views[d.id] = DeviceView(d.id, usable, values, t, "" if usable else "offline: x")
        yield Snapshot(t, 5.0 * k, rnd.choice([None, 400.123456]), dict(views))


@pytest.mark.parametrize("extensions", [True, False])
def test_same_messages_as_building_each_one(extensions: bool) -> None:
    site = _site(extensions)
    builder = TelemetryBuilder(site)
    for k, snap in enumerate(_snapshots(site, 300)):  # 25 simulated minutes of messages
        expected = json.dumps(telemetry_message(site, snap), sort_keys=True)
        assert json.dumps(builder.message(snap), sort_keys=True) == expected, k


@pytest.mark.parametrize("extensions", [True, False])
def test_the_wire_bytes_are_those_of_encoding_each_message(extensions: bool) -> None:
    site = _site(extensions)
    builder = TelemetryBuilder(site)
    wire = TelemetryEncoder()
    for k, snap in enumerate(_snapshots(site, 300)):
        msg = builder.message(snap)
        assert wire.encode(msg) == encode(msg), k
    # An entry that changes in place is not one the builder makes, but a new dict is seen.
    msg = builder.message(snap)
    msg["devices"] = {**msg["devices"], "meter": {"online": False, "ünï": '"devices":1'}}
    assert wire.encode(msg) == encode(msg)


def test_an_entry_is_rebuilt_when_a_new_reading_arrives() -> None:
    site = _site(True)
    builder = TelemetryBuilder(site)
    views = {d.id: DeviceView(d.id, True, {"power_kw": 1.0}, T0) for d in site.devices}
    first = builder.message(Snapshot(T0, 0.0, 10.0, views))
    assert first["devices"]["ahu-fans"]["power_kw"] == 1.0
    later = T0 + timedelta(seconds=5)
    views["ahu-fans"] = DeviceView("ahu-fans", True, {"power_kw": 2.0}, later)
    second = builder.message(Snapshot(later, 5.0, 10.0, views))
    assert second["devices"]["ahu-fans"]["power_kw"] == 2.0
    assert second["ts"] != first["ts"]
