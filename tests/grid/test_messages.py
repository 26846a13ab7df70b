"""Outgoing messages, field types, generated schemas and the operator docs' examples."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.grid.helpers import NOW, event_dict, interval, payload
from vpp.grid import schemas
from vpp.grid.messages import (
    DeviceTelemetry,
    Event,
    ExtendedDeviceTelemetry,
    ExtendedReport,
    ExtendedReportInterval,
    ExtendedStatus,
    ExtendedTelemetry,
    FieldError,
    IntervalMissing,
    Report,
    ReportInterval,
    Response,
    Status,
    Telemetry,
)
from vpp.grid.offers import Offer, OfferRequest
from vpp.grid.parse import MAX_ERRORS, MessageError, Rejection, parse_event, parse_message
from vpp.grid.topics import SiteTopics
from vpp.grid.types import format_duration, parse_duration, parse_time

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "grid-messages.md"
MODELS: dict[str, type[BaseModel]] = {
    "event": Event,
    "response": Response,
    "report": Report,
    "status": Status,
    "telemetry": Telemetry,
    "offer": Offer,
    "offer_request": OfferRequest,
    "extended/report": ExtendedReport,
    "extended/status": ExtendedStatus,
    "extended/telemetry": ExtendedTelemetry,
}


def test_schema_files_match_the_models() -> None:
    fresh = schemas.generate()
    assert sorted(fresh) == [f"{m}.json" for m in sorted(MODELS)]
    for name, text in fresh.items():
        assert (ROOT / "docs" / "schemas" / name).read_text(encoding="utf-8") == text, (
            f"docs/schemas/{name} is stale: run python -m vpp.grid.schemas"
        )


def test_schemas_main_writes_and_checks(tmp_path: Path) -> None:
    assert schemas.main(["--out", str(tmp_path), "--check"]) == 1
    assert schemas.main(["--out", str(tmp_path)]) == 0
    assert schemas.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "event.json").write_text("{}")
    assert schemas.stale(tmp_path) == ["event.json"]


def test_event_schema_states_the_limits() -> None:
    event = json.loads(schemas.generate()["event.json"])
    assert event["additionalProperties"] is False
    assert event["properties"]["intervals"]["minItems"] == 1
    assert event["properties"]["intervals"]["maxItems"] == 288
    assert event["properties"]["modification"]["minimum"] == 0
    assert set(event["required"]) == {"v", "event_id", "modification", "signal", "intervals"}
    pattern = event["$defs"]["Interval"]["properties"]["duration"]["pattern"]
    assert "?P<" not in pattern  # ECMA-262 regex, usable by any JSON Schema validator
    assert re.match(pattern, "PT30M") and not re.match(pattern, "00:30:00")


def _doc_examples() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"```json ([\w/]+)\n(.*?)```", text, flags=re.S)


def test_docs_have_an_example_of_every_message() -> None:
    assert {kind for kind, _ in _doc_examples()} == set(MODELS)


@pytest.mark.parametrize(("kind", "body"), _doc_examples())
def test_docs_examples_are_valid(kind: str, body: str) -> None:
    msg = parse_message(MODELS[kind], body.encode())
    assert isinstance(msg, MODELS[kind])
    if kind == "event":  # and the site accepts it on the morning of 2026-07-15
        assert isinstance(parse_event(body.encode(), NOW), Event)


def test_response_json_keeps_nulls_and_round_trips() -> None:
    r = Response(
        event_id=None,
        modification=None,
        status="rejected",
        reason="x",
        ts=NOW,
        errors=[FieldError(loc="$", msg="not JSON")],
    )
    data = json.loads(r.to_json())
    assert data["event_id"] is None and data["v"] == 1 and data["ts"] == "2026-07-15T06:00:00Z"
    assert parse_message(Response, r.to_json()) == r


def test_status_last_will_is_minimal() -> None:
    assert Status(online=False).to_json() == b'{"v":1,"online":false}'
    assert ExtendedStatus(online=False).to_json() == b'{"v":1,"online":false}'
    s = ExtendedStatus(online=True, ts=NOW, site_id="office")
    assert parse_message(ExtendedStatus, s.to_json()) == s


def test_contract_models_refuse_the_extension_fields() -> None:
    """A strict receiver (the contract's models) rejects every extension field."""
    with pytest.raises(MessageError) as exc:
        parse_message(Status, ExtendedStatus(online=True, ts=NOW, site_id="o").to_json())
    assert sorted(e.loc for e in exc.value.errors) == ["site_id", "ts"]
    dev = {"online": False, "kind": "pv", "reason": "timeout"}
    raw = payload(
        {"v": 1, "ts": "2026-07-15T06:00:00Z", "site_import_kw": 1, "devices": {"p": dev}}
    )
    assert isinstance(parse_message(ExtendedTelemetry, raw), ExtendedTelemetry)
    with pytest.raises(MessageError) as exc:
        parse_message(Telemetry, raw)
    assert sorted(e.loc for e in exc.value.errors) == ["devices.p.kind", "devices.p.reason"]
    assert ExtendedDeviceTelemetry(
        online=True, power_kw=1.0, kind="battery", soc=5.0
    ).contract() == (DeviceTelemetry(online=True, power_kw=1.0, soc=5.0))


def test_telemetry_omits_unknown_fields_and_round_trips() -> None:
    t = ExtendedTelemetry(
        ts=NOW,
        site_import_kw=-12.5,
        devices={
            "bess-1": ExtendedDeviceTelemetry(online=True, power_kw=-50.0, soc=40.0),
            "pv": ExtendedDeviceTelemetry(online=False, reason="timeout"),
        },
    )
    data = json.loads(t.to_json())
    assert data["devices"]["pv"] == {"online": False, "reason": "timeout"}
    assert parse_message(ExtendedTelemetry, t.to_json()) == t
    strict = t.contract()
    assert json.loads(strict.to_json())["devices"] == {
        "bess-1": {"online": True, "power_kw": -50.0, "soc": 40.0},
        "pv": {"online": False},
    }
    assert parse_message(Telemetry, strict.to_json()) == strict


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"online": True, "soc": 120}, "devices.b.soc"),
        ({"online": True, "colour": "red"}, "devices.b.colour"),
        ({"online": "yes"}, "devices.b.online"),
        ({"online": True, "power_kw": float("nan")}, "devices.b.power_kw"),
    ],
)
def test_telemetry_rejects_bad_device_fields(body: dict[str, Any], loc: str) -> None:
    raw = payload(
        {"v": 1, "ts": "2026-07-15T06:00:00Z", "site_import_kw": 1, "devices": {"b": body}}
    )
    with pytest.raises(MessageError) as exc:
        parse_message(Telemetry, raw)
    assert [e.loc for e in exc.value.errors] == [loc]


def test_report_round_trips_with_durations() -> None:
    rep = ExtendedReport(
        event_id="e",
        modification=0,
        signal="import_cap_kw",
        baseline_method="x_of_y",
        intervals=[
            ExtendedReportInterval(
                start=NOW,
                duration=timedelta(minutes=90),
                requested_kw=10.0,
                baseline_kw=None,
                actual_kw=None,
                delivered_kw=None,
                missing=IntervalMissing(notes=["meter offline"]),
            )
        ],
        program=None,
        delivered_ratio=None,
        comfort_violation_degC_h=0.0,
        ts=NOW,
    )
    data = json.loads(rep.to_json())
    assert data["intervals"][0]["duration"] == "PT1H30M"
    assert parse_message(ExtendedReport, rep.to_json()) == rep
    with pytest.raises(MessageError):  # a strict receiver refuses signal, ts, missing
        parse_message(Report, rep.to_json())
    with pytest.raises(ValidationError):
        ReportInterval(
            start=NOW,
            duration=timedelta(minutes=5),
            requested_kw=-1.0,
            baseline_kw=None,
            actual_kw=None,
            delivered_kw=None,
        )


def test_errors_are_capped_with_a_count_of_the_rest() -> None:
    ivs = [
        interval(f"2026-07-16T{(i * 5) // 60:02d}:{(i * 5) % 60:02d}:00Z", "PT5M", -1)
        for i in range(120)
    ]
    result = parse_event(payload(event_dict(intervals=ivs)), NOW)
    assert isinstance(result, Rejection)
    assert len(result.errors) == MAX_ERRORS
    assert result.errors[-1].msg == f"and {120 - MAX_ERRORS + 1} more errors"
    assert len(result.response.to_json()) < 16_384


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT30M", 1800),
        ("PT2H", 7200),
        ("P1D", 86400),
        ("PT0.5S", 0.5),
        ("P1DT1H1M1S", 90061),
        ("PT90M", 5400),
        ("-PT5M", -300),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "P1DT", "PT1H30", "P1Y", "P1M", "1800", "PT-5M", "pt30m", "PT30M ", "P1.5D"],
)
def test_non_iso_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


@settings(max_examples=200, deadline=None)
@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=400)))
def test_duration_format_round_trips(d: timedelta) -> None:
    assert parse_duration(format_duration(d)) == d


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-15T14:00:00+08:00", datetime(2026, 7, 15, 6, 0, tzinfo=UTC)),
        ("2026-07-15T06:00:00Z", datetime(2026, 7, 15, 6, 0, tzinfo=UTC)),
        ("2026-07-15t06:00:00.25z", datetime(2026, 7, 15, 6, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-15T14:00:00",
        "2026-07-15",
        "14:00Z",
        "2026-07-15T14:00Z",
        "2026-02-30T00:00:00Z",
        "2026-07-15T14:00:00+0800",
    ],
)
def test_bad_times_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_topics() -> None:
    t = SiteTopics("vpp", "office-1")
    assert (t.events.name, t.events.qos, t.events.retain) == ("vpp/office-1/events", 1, False)
    assert (t.status.name, t.status.retain) == ("vpp/office-1/status", True)
    assert t.telemetry.qos == 0 and t.reports.qos == 1 and t.responses.qos == 1
    with pytest.raises(ValueError, match="site_id"):
        SiteTopics("vpp", "a/+")


def test_contract_schemas_list_exactly_the_contracts_fields() -> None:
    """docs/schemas/*.json (what a grid operator validates against) name exactly the fields
    of grid-interface.md and forbid any other; the extended ones add the extension."""
    gen = {name: json.loads(text) for name, text in schemas.generate().items()}
    report = gen["report.json"]
    assert set(report["properties"]) == {
        "v", "event_id", "modification", "program", "baseline_method", "intervals",
        "delivered_ratio", "comfort_violation_degC_h",
    }  # fmt: skip
    interval = report["$defs"]["ReportInterval"]
    assert set(interval["properties"]) == {
        "start", "duration", "requested_kw", "baseline_kw", "actual_kw", "delivered_kw"
    }  # fmt: skip
    assert report["additionalProperties"] is False and interval["additionalProperties"] is False
    assert set(gen["status.json"]["properties"]) == {"v", "online"}
    device = gen["telemetry.json"]["$defs"]["DeviceTelemetry"]
    assert set(device["properties"]) == {
        "online", "power_kw", "soc", "plugged", "energy_kwh", "zone_temp_c", "setpoint_c"
    }  # fmt: skip
    assert device["additionalProperties"] is False
    assert {"signal", "ts", "final", "details"} <= set(gen["extended/report.json"]["properties"])
    ext_device = gen["extended/telemetry.json"]["$defs"]["ExtendedDeviceTelemetry"]
    assert {"kind", "reason"} <= set(ext_device["properties"])
