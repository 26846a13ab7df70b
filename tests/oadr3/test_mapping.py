"""OpenADR 3.1 events as native events (vpp.grid.oadr3.mapping), table-driven; every native
event made is checked with the contract's own parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vpp.grid.messages import Event as NativeEvent
from vpp.grid.oadr3.mapping import Unmappable, map_event, native_id
from vpp.grid.oadr3.wire import Event
from vpp.grid.parse import parse_event

SEEN = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
LEVELS = {1: 50.0, 2: 100.0, 3: 150.0}


def _event(payloads: list[list[dict[str, Any]]], **extra: Any) -> Event:
    body: dict[str, Any] = {
        "id": "ev-1",
        "programID": "prog-1",
        "intervalPeriod": {"start": "2026-07-15T07:00:00Z", "duration": "PT15M"},
        "intervals": [{"id": 5 + i, "payloads": p} for i, p in enumerate(payloads)],
    }
    body.update(extra)
    return Event.model_validate(body)


def _one(kind: str, value: Any) -> list[dict[str, Any]]:
    return [{"type": kind, "values": [value]}]


def _map(event: Event) -> dict[str, Any]:
    mapped = map_event(
        event, program_name="summer", simple_levels_kw=LEVELS, modification=2, first_seen=SEEN
    )
    parsed = parse_event(json.dumps(mapped.native).encode(), SEEN)
    assert isinstance(parsed, NativeEvent), parsed
    assert (
        mapped.interval_ids
        == [5 + i for i in range(len(event.intervals))][: len(mapped.interval_ids)]
    )
    return dict(mapped.native)


@pytest.mark.parametrize(
    ("kind", "value", "units", "signal", "native_value"),
    [
        ("IMPORT_CAPACITY_LIMIT", 120, "KW", "import_cap_kw", 120.0),
        ("IMPORT_CAPACITY_LIMIT", 120000, "W", "import_cap_kw", 120.0),
        ("DISPATCH_SETPOINT", 80.5, "KW", "import_target_kw", 80.5),
        ("DISPATCH_SETPOINT_RELATIVE", 30, "KW", "curtail_kw", 30.0),
        ("SIMPLE", 2, None, "curtail_kw", 100.0),
        ("SIMPLE", 0, None, "curtail_kw", 0.0),
        ("PRICE", 0.31, "KWH", "price", 0.31),
        ("EXPORT_CAPACITY_LIMIT", 25, "KW", "export_cap_kw", 25.0),
        ("EXPORT_CAPACITY_LIMIT", 0, None, "export_cap_kw", 0.0),
        ("EXPORT_CAPACITY_LIMIT", 40000, "W", "export_cap_kw", 40.0),
        ("GHG", 450, None, "carbon", 0.45),
        ("GHG", 600, "G_PER_KWH", "carbon", 0.6),
        ("GHG", 0.3, "KG_PER_KWH", "carbon", 0.3),
    ],
)
def test_payload_types_map_to_native_signals(
    kind: str, value: Any, units: str | None, signal: str, native_value: float
) -> None:
    descriptor = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": kind}
    if units:
        descriptor["units"] = units
    native = _map(_event([_one(kind, value)], payloadDescriptors=[descriptor], priority=3))
    assert native["signal"] == signal
    assert native["intervals"] == [
        {"start": "2026-07-15T07:00:00+00:00", "duration": "PT15M", "value": native_value}
    ]
    assert native["event_id"] == "oadr3.ev-1"
    assert native["modification"] == 2 and native["priority"] == 3
    assert native["program"] == "summer"


def test_intervals_without_a_period_follow_on_and_own_periods_override() -> None:
    ev = _event(
        [
            _one("IMPORT_CAPACITY_LIMIT", 100),
            _one("IMPORT_CAPACITY_LIMIT", 90),
            _one("IMPORT_CAPACITY_LIMIT", 80),
        ]
    )
    raw = ev.model_dump()
    raw["intervals"][2]["intervalPeriod"] = {"start": "2026-07-15T08:00:00Z", "duration": "PT30M"}
    native = _map(Event.model_validate(raw))
    assert [(i["start"], i["duration"]) for i in native["intervals"]] == [
        ("2026-07-15T07:00:00+00:00", "PT15M"),
        ("2026-07-15T07:15:00+00:00", "PT15M"),
        ("2026-07-15T08:00:00+00:00", "PT30M"),
    ]


def test_a_start_of_0001_01_01_means_when_first_seen() -> None:
    ev = _event(
        [_one("DISPATCH_SETPOINT_RELATIVE", 10)],
        intervalPeriod={"start": "0001-01-01T00:00:00Z", "duration": "PT1H"},
    )
    assert _map(ev)["intervals"][0]["start"] == SEEN.isoformat()


def test_the_first_type_acted_on_decides_and_the_others_are_named() -> None:
    ev = _event([[*_one("GHG", 400), *_one("PRICE", 0.2), *_one("IMPORT_CAPACITY_LIMIT", 90)]])
    mapped = map_event(ev, program_name=None, simple_levels_kw={}, modification=0, first_seen=SEEN)
    assert mapped.payload_type == "IMPORT_CAPACITY_LIMIT"
    assert mapped.ignored_types == ["GHG", "PRICE"]
    ev = _event([[*_one("GHG", 400), *_one("PRICE", 0.2), *_one("EXPORT_CAPACITY_LIMIT", 9)]])
    mapped = map_event(ev, program_name=None, simple_levels_kw={}, modification=0, first_seen=SEEN)
    assert (mapped.payload_type, mapped.native["signal"]) == (
        "EXPORT_CAPACITY_LIMIT",
        "export_cap_kw",
    )
    assert mapped.ignored_types == ["GHG", "PRICE"]
    assert "program" not in mapped.native


@pytest.mark.parametrize(
    ("payloads", "extra", "why"),
    [
        ([_one("EXPORT_PRICE", 0.1)], {}, "EXPORT_PRICE"),
        ([_one("EXPORT_CAPACITY_LIMIT", -3)], {}, "EXPORT_CAPACITY_LIMIT must be ≥ 0"),
        ([_one("GHG", -1)], {}, "GHG must be ≥ 0"),
        (
            [_one("GHG", 400)],
            {
                "payloadDescriptors": [
                    {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "GHG", "units": "LB"}
                ]
            },
            "GHG in LB",
        ),
        ([_one("FOO_BAR", 1)], {}, "FOO_BAR"),
        ([], {}, "no intervals"),
        ([_one("SIMPLE", 3)], {}, "SIMPLE level 3 has no grid.simple_levels_kw"),
        ([_one("SIMPLE", 4)], {}, "0, 1, 2 or 3"),
        ([_one("DISPATCH_SETPOINT_RELATIVE", -5)], {}, "≥ 0"),
        ([_one("IMPORT_CAPACITY_LIMIT", "lots")], {}, "must be a number"),
        ([_one("IMPORT_CAPACITY_LIMIT", True)], {}, "must be a number"),
        (
            [_one("IMPORT_CAPACITY_LIMIT", 5)],
            {
                "payloadDescriptors": [
                    {
                        "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                        "payloadType": "IMPORT_CAPACITY_LIMIT",
                        "units": "KVA",
                    }
                ]
            },
            "only KW",
        ),
        (
            [_one("IMPORT_CAPACITY_LIMIT", 5)],
            {"intervalPeriod": {"start": "2026-07-15T07:00:00Z", "duration": "P9999Y"}},
            "open-ended",
        ),
        ([_one("IMPORT_CAPACITY_LIMIT", 5)], {"intervalPeriod": None}, "no start or duration"),
        (
            [_one("IMPORT_CAPACITY_LIMIT", 5)],
            {"intervalPeriod": {"start": "2026-07-15T07:00:00", "duration": "PT1H"}},
            "offset",
        ),
    ],
)
def test_what_cannot_be_carried_out_is_one_line(
    payloads: list[list[dict[str, Any]]], extra: dict[str, Any], why: str
) -> None:
    ev = _event(payloads, **extra)
    with pytest.raises(Unmappable) as info:
        map_event(ev, program_name=None, simple_levels_kw={1: 5.0}, modification=0, first_seen=SEEN)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_native_ids_are_prefixed_and_fit_the_contract() -> None:
    assert native_id("abc_1-2") == "oadr3.abc_1-2"
    long = "x" * 128
    made = native_id(long)
    assert made.startswith("oadr3.") and len(made) <= 64 and made == native_id(long)
    assert made != native_id("y" * 128)
