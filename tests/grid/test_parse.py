"""parse_event: every malformed message gives exactly one Rejection naming the bad field."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.grid.helpers import NOW, event_dict, interval, payload
from vpp.grid.messages import Event
from vpp.grid.parse import Rejection, parse_event


def _with_intervals(*ivs: dict[str, Any]) -> bytes:
    return payload(event_dict(intervals=list(ivs)))


def _without(field: str) -> bytes:
    ev = event_dict()
    del ev[field]
    return payload(ev)


def _nested(depth: int) -> bytes:
    return payload(event_dict(program=json.loads("[" * depth + "]" * depth)))


T0 = "2026-07-15T14:00:00+08:00"
T1 = "2026-07-15T14:30:00+08:00"
T2 = "2026-07-15T15:00:00+08:00"

# (case id, payload, loc of the error that must be reported, words expected in its msg)
MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("not json", b"{v: 1, event_id: x}", "$", "not JSON"),
    ("empty payload", b"", "$", "not JSON"),
    ("not utf-8", b'{"v": 1, "event_id": "\xff\xfe"}', "$", "UTF-8"),
    ("json array", b"[1, 2]", "$", "object"),
    ("json string", b'"event"', "$", "object"),
    ("json null", b"null", "$", "object"),
    ("missing event_id", _without("event_id"), "event_id", "missing"),
    ("missing intervals", _without("intervals"), "intervals", "missing"),
    ("missing modification", _without("modification"), "modification", "missing"),
    ("unknown field", payload(event_dict(urgency="high")), "urgency", "unknown"),
    (
        "unknown interval field",
        _with_intervals({**interval(T0), "unit": "kW"}),
        "intervals[0].unit",
        "unknown",
    ),
    ("v is 2", payload(event_dict(v=2)), "v", "1"),
    ("v is a string", payload(event_dict(v="1")), "v", ""),
    ("v is true", payload(event_dict(v=True)), "v", "boolean"),
    (
        "naive start",
        _with_intervals(interval("2026-07-15T14:00:00")),
        "intervals[0].start",
        "offset",
    ),
    ("start not a time", _with_intervals(interval("tomorrow")), "intervals[0].start", "RFC 3339"),
    (
        "start as epoch number",
        _with_intervals(interval(1784095200)),
        "intervals[0].start",
        "string",
    ),
    (
        "start in year 9999",
        _with_intervals(interval("9999-12-31T23:00:00Z", "P1D")),
        "intervals[0].start",
        "outside",
    ),
    (
        "start not a calendar day",
        _with_intervals(interval("2026-02-30T14:00:00Z")),
        "intervals[0].start",
        "calendar",
    ),
    ("zero duration", _with_intervals(interval(T0, "PT0S")), "intervals[0].duration", "positive"),
    (
        "negative duration",
        _with_intervals(interval(T0, "-PT30M")),
        "intervals[0].duration",
        "positive",
    ),
    (
        "duration over a day",
        _with_intervals(interval(T0, "P1DT1S")),
        "intervals[0].duration",
        "one day",
    ),
    (
        "duration hh:mm:ss",
        _with_intervals(interval(T0, "00:30:00")),
        "intervals[0].duration",
        "ISO 8601",
    ),
    (
        "duration in months",
        _with_intervals(interval(T0, "P1M")),
        "intervals[0].duration",
        "ISO 8601",
    ),
    ("duration as seconds", _with_intervals(interval(T0, 1800)), "intervals[0].duration", "string"),
    (
        "overlapping intervals",
        _with_intervals(interval(T0, "PT45M"), interval(T1)),
        "intervals[1].start",
        "overlaps",
    ),
    (
        "unordered intervals",
        _with_intervals(interval(T1), interval(T0)),
        "intervals[1].start",
        "order",
    ),
    ("no intervals", payload(event_dict(intervals=[])), "intervals", "at least 1"),
    (
        "289 intervals",
        payload(
            event_dict(
                intervals=[
                    interval(f"2026-07-16T{(i * 5) // 60 % 24:02d}:{(i * 5) % 60:02d}:00Z", "PT5M")
                    for i in range(289)
                ]
            )
        ),
        "intervals",
        "at most 288",
    ),
    (
        "interval ends more than 7 days ahead",
        _with_intervals(interval("2026-07-22T05:45:00Z", "PT30M")),
        "intervals[0]",
        "7 days",
    ),
    (
        "value NaN literal",
        b'{"v":1,"event_id":"e","modification":0,"signal":"curtail_kw","intervals":'
        b'[{"start":"2026-07-15T14:00:00+08:00","duration":"PT30M","value":NaN}]}',
        "intervals[0].value",
        "finite",
    ),
    (
        "value Infinity literal",
        b'{"v":1,"event_id":"e","modification":0,"signal":"price","intervals":'
        b'[{"start":"2026-07-15T14:00:00+08:00","duration":"PT30M","value":-Infinity}]}',
        "intervals[0].value",
        "finite",
    ),
    ("value 1e12 kW", _with_intervals(interval(T0, value=1e12)), "intervals[0].value", "100000"),
    ("negative curtail", _with_intervals(interval(T0, value=-5)), "intervals[0].value", "0…100000"),
    (
        "negative import cap",
        payload(event_dict(signal="import_cap_kw", intervals=[interval(T0, value=-1)])),
        "intervals[0].value",
        "import_cap_kw",
    ),
    (
        "price out of range",
        payload(event_dict(signal="price", intervals=[interval(T0, value=10_000.5)])),
        "intervals[0].value",
        "per kWh",
    ),
    (
        "negative export cap",
        payload(event_dict(signal="export_cap_kw", intervals=[interval(T0, value=-0.5)])),
        "intervals[0].value",
        "export_cap_kw value must be within 0…100000 kW",
    ),
    (
        "carbon out of range",
        payload(event_dict(signal="carbon", intervals=[interval(T0, value=12.0)])),
        "intervals[0].value",
        "carbon value must be within 0…10 kg CO2/kWh",
    ),
    (
        "export cap is a string",
        payload(event_dict(signal="export_cap_kw", intervals=[interval(T0, value="5")])),
        "intervals[0].value",
        "number",
    ),
    (
        "value is a string",
        _with_intervals(interval(T0, value="50")),
        "intervals[0].value",
        "number",
    ),
    ("value is true", _with_intervals(interval(T0, value=True)), "intervals[0].value", "boolean"),
    ("event_id bad characters", payload(event_dict(event_id="evt 1/2")), "event_id", "pattern"),
    ("event_id too long", payload(event_dict(event_id="e" * 65)), "event_id", "64"),
    ("event_id empty", payload(event_dict(event_id="")), "event_id", "at least 1"),
    ("event_id a number", payload(event_dict(event_id=17)), "event_id", "string"),
    (
        "1 MB message",
        payload(event_dict(program="x" * 1_000_000)),
        "$",
        "65536",
    ),
    ("nesting too deep for the parser", _nested(40), "$", "nested"),
    ("nesting deeper than the schema", _nested(3), "program[0][0]", "nested"),
    ("modification negative", payload(event_dict(modification=-1)), "modification", "greater"),
    ("modification a float", payload(event_dict(modification=1.5)), "modification", "integer"),
    ("modification true", payload(event_dict(modification=True)), "modification", "boolean"),
    ("priority negative", payload(event_dict(priority=-3)), "priority", "greater"),
    ("bad signal", payload(event_dict(signal="SIMPLE")), "signal", "curtail_kw"),
    ("program too long", payload(event_dict(program="p" * 65)), "program", "64"),
    ("program empty", payload(event_dict(program="")), "program", "at least 1"),
    ("cancelled a string", payload(event_dict(cancelled="yes")), "cancelled", "true or false"),
    ("test a number", payload(event_dict(test=1)), "test", "true or false"),
    ("intervals an object", payload(event_dict(intervals={"start": T0})), "intervals", "array"),
    ("interval a number", payload(event_dict(intervals=[5])), "intervals[0]", "object"),
    (
        "duplicate key",
        b'{"v":1,"v":1,"event_id":"e","modification":0,"signal":"price","intervals":[]}',
        "$",
        "duplicate",
    ),
    ("huge integer", b'{"v":1,"modification":' + b"9" * 5000 + b"}", "$", "JSON"),
]


@pytest.mark.parametrize(
    ("data", "loc", "words"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_event_is_rejected_naming_the_field(data: bytes, loc: str, words: str) -> None:
    result = parse_event(data, NOW)
    assert isinstance(result, Rejection)
    r = result.response
    assert r.status == "rejected"
    assert r.ts == NOW
    assert r.reason and r.reason.startswith("Invalid event message")
    locs = [e.loc for e in r.errors]
    assert locs == [loc], f"{locs} {[e.msg for e in r.errors]}"
    assert words.lower() in r.errors[0].msg.lower(), r.errors[0].msg
    # The rejection is itself a valid Response that serialises within the size limit.
    assert len(r.to_json()) < 4096


def test_at_least_25_kinds() -> None:
    assert len(MALFORMED) >= 25


def test_valid_event_parses_with_typed_fields() -> None:
    result = parse_event(payload(event_dict()), NOW)
    assert isinstance(result, Event)
    assert result.event_id == "evt-2026.07.15_a"
    assert result.intervals[0].duration == timedelta(minutes=30)
    assert result.intervals[1].value == 80.5
    assert result.start.utcoffset() == timedelta(hours=8)
    assert result.end - result.start == timedelta(hours=1)
    assert (result.cancelled, result.test, result.priority) == (False, False, 1)


def test_event_id_echoed_when_other_fields_are_bad() -> None:
    result = parse_event(payload(event_dict(modification=3, signal="bogus")), NOW)
    assert isinstance(result, Rejection)
    assert (result.response.event_id, result.response.modification) == ("evt-2026.07.15_a", 3)


def test_bad_event_id_is_not_echoed() -> None:
    result = parse_event(payload(event_dict(event_id="a b")), NOW)
    assert isinstance(result, Rejection)
    assert result.response.event_id is None


def test_several_bad_fields_are_all_named() -> None:
    result = parse_event(payload(event_dict(v=2, priority=-1, extra=0)), NOW)
    assert isinstance(result, Rejection)
    assert sorted(e.loc for e in result.errors) == ["extra", "priority", "v"]
    assert "and 2 more" in (result.response.reason or "")


def test_288_intervals_and_the_limits_themselves_are_accepted() -> None:
    ivs = [
        interval(f"2026-07-16T{(i * 5) // 60:02d}:{(i * 5) % 60:02d}:00Z", "PT5M", 100_000)
        for i in range(288)
    ]
    assert isinstance(parse_event(payload(event_dict(intervals=ivs)), NOW), Event)
    edge = [interval("2026-07-21T06:00:00Z", "P1D", 0)]  # ends exactly now + 7 days
    assert isinstance(parse_event(payload(event_dict(intervals=edge)), NOW), Event)
    price = [interval(T0, value=-10_000), interval(T1, value=10_000)]
    assert isinstance(parse_event(payload(event_dict(signal="price", intervals=price)), NOW), Event)
    cap = [interval(T0, value=0), interval(T1, value=100_000)]
    assert isinstance(
        parse_event(payload(event_dict(signal="export_cap_kw", intervals=cap)), NOW), Event
    )
    carbon = [interval(T0, value=0), interval(T1, value=10)]
    assert isinstance(
        parse_event(payload(event_dict(signal="carbon", intervals=carbon)), NOW), Event
    )


def test_contiguous_intervals_and_gaps_are_accepted() -> None:
    ivs = [interval(T0), interval(T1, "PT15M"), interval(T2)]
    assert isinstance(parse_event(_with_intervals(*ivs), NOW), Event)


def test_seven_days_are_counted_from_now() -> None:
    data = _with_intervals(interval("2026-07-22T05:45:00Z", "PT30M"))
    assert isinstance(parse_event(data, NOW), Rejection)
    assert isinstance(parse_event(data, NOW + timedelta(minutes=15)), Event)


def test_str_payload_is_accepted_like_bytes() -> None:
    assert isinstance(parse_event(json.dumps(event_dict()), NOW), Event)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_parse_event_never_raises_on_bytes(data: bytes) -> None:
    result = parse_event(data, NOW)
    assert isinstance(result, Event | Rejection)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*list(event_dict()), "x"]), _json, max_size=8))
def test_parse_event_never_raises_on_json_objects(obj: dict[str, Any]) -> None:
    result = parse_event(json.dumps(obj).encode(), NOW)
    if isinstance(result, Rejection):
        assert result.errors and all(e.loc for e in result.errors)
