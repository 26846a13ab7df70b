"""Value maps (`values: {remote: 1, local: 0}`) in profiles: validation, lookup, and writing /
reading a point by name against a real pymodbus server."""

from __future__ import annotations

from typing import Any

import pytest

from devices.clock import VirtualClock
from devices.driver import PointError, enum_name, write_enum
from devices.modbus_driver import ModbusDriver
from devices.profile import EnumError, ProfileError, parse_profile
from tests.devices.conftest import ServeFn, bundled


def _meter_with(point: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "m",
        "kind": "meter",
        "points": {
            "import_power_kw": {"table": "input", "address": 0, "type": "s16"},
            "import_energy_kwh": {"table": "input", "address": 1},
            "export_energy_kwh": {"table": "input", "address": 2},
            "mode": {"table": "holding", "address": 10, **point},
        },
    }


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ({"values": {"a": 1, "b": 1}}, "points.mode: Value error, values.b: 1 is also values.a"),
        ({"values": {"neg": -1}}, "values.neg: -1 does not fit u16 (0..65535)"),
        ({"type": "s16", "values": {"big": 40000}}, "values.big: 40000 does not fit s16"),
        ({"values": {"half": 0.5}}, "values.half: 0.5 is not an integer (u16)"),
        (
            {"access": "rw", "min": 0, "max": 1, "values": {"boost": 2}},
            "values.boost: 2 is outside the point's min..max (0.0..1.0)",
        ),
        ({"scale": 0.1, "values": {"x": 1}}, "a point with values has scale 1 and no scale_factor"),
    ],
)
def test_bad_enumeration_names_the_point(point: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(_meter_with(point), "m.yaml")
    assert "m.yaml: points.mode" in str(err.value)
    assert expected in str(err.value)


def test_mqtt_point_enumeration_fits_its_type() -> None:
    raw = {
        "name": "q",
        "kind": "meter",
        "transport": "mqtt",
        "points": {
            "import_power_kw": {"field": "p"},
            "import_energy_kwh": {"field": "e"},
            "export_energy_kwh": {"field": "x"},
            "on": {"field": "on", "type": "bool", "values": {"off": 0, "on": 2}},
        },
    }
    with pytest.raises(ProfileError, match=r"points\.on: .*values\.on: 2 does not fit bool"):
        parse_profile(raw)


def test_bundled_battery_declares_its_control_mode() -> None:
    p = bundled("sunspec-battery")
    assert p.enum_value("control_mode", "remote") == 1
    assert type(p.enum_value("control_mode", "remote")) is int  # written as 1, not 1.0
    assert p.enum_value("control_mode", "local") == 0
    assert p.enum_name("control_mode", 1.0) == "remote"
    with pytest.raises(EnumError, match=r"control_mode has no value 'turbo' \(known: local, re"):
        p.enum_value("control_mode", "turbo")
    with pytest.raises(EnumError, match="point soc_pct has no values"):
        p.enum_value("soc_pct", "full")
    with pytest.raises(EnumError, match="has no point nope"):
        p.enum_value("nope", "x")
    with pytest.raises(EnumError, match="control_mode = 7 has no name"):
        p.enum_name("control_mode", 7)


async def test_write_and_read_by_name_over_modbus(serve: ServeFn) -> None:
    clock = VirtualClock()
    profile = bundled("sunspec-battery")
    s = await serve(profile, clock)
    d = ModbusDriver("bat", profile, host="127.0.0.1", port=s.port, clock=clock)
    res = await write_enum(d, "control_mode", "remote")
    assert (res.point, res.written) == ("control_mode", 1.0)
    assert s.get("control_mode") == 1.0
    assert enum_name(d, await d.read(), "control_mode") == "remote"
    await write_enum(d, "control_mode", "local")
    assert s.get("control_mode") == 0.0
    assert enum_name(d, await d.read(), "control_mode") == "local"
    with pytest.raises(PointError, match=r"bat: .*no value 'turbo'"):
        await write_enum(d, "control_mode", "turbo")
    assert s.get("control_mode") == 0.0  # nothing was sent
    with pytest.raises(PointError, match="point soc_pct has no values"):
        enum_name(d, await d.read(), "soc_pct")
    await d.close()
