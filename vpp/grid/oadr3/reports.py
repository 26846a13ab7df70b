"""The agent's reports (vpp.grid.messages.ExtendedReport data) as OpenADR 3.1 reports: what an
event's `reportDescriptors` ask for, per event interval, with the event's interval ids.

| descriptor payloadType | from the agent's report interval | units |
|---|---|---|
| USAGE | actual import (kWh over the interval; kW if asked in KW) | KWH (default), KW |
| DEMAND | actual import (mean kW) | KW (default), KWH |
| BASELINE | the settlement baseline (`baseline_kw`) | KW (default), KWH |
| DELTA_USAGE | actual − baseline | KW (default), KWH |

USAGE and DEMAND are bounded at ≥ 0 by the enumerations: an interval of net export
reports 0. A value the agent does not know (null: no meter data) is left out of that
interval; a descriptor of another payload type is left out of the report (logged once by
the link). 3.1.0 reports carry no programID: `eventID` and `clientName` name them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vpp.grid.oadr3.wire import ReportDescriptor, values_map
from vpp.grid.types import parse_duration

REPORTED_TYPES = ("USAGE", "DEMAND", "BASELINE", "DELTA_USAGE")
"""Descriptor payload types the VEN reports from its measurements."""

_DEFAULT_UNITS = {"USAGE": "KWH", "DEMAND": "KW", "BASELINE": "KW", "DELTA_USAGE": "KW"}


def _value(payload_type: str, units: str, iv: dict[str, Any]) -> float | None:
    actual, baseline = iv.get("actual_kw"), iv.get("baseline_kw")
    if payload_type in ("USAGE", "DEMAND"):
        kw = None if actual is None else max(0.0, float(actual))
    elif payload_type == "BASELINE":
        kw = None if baseline is None else float(baseline)
    elif payload_type == "DELTA_USAGE":
        kw = None if actual is None or baseline is None else float(actual) - float(baseline)
    else:
        return None
    if kw is None:
        return None
    if units == "KWH":
        hours = parse_duration(iv["duration"]).total_seconds() / 3600.0
        return round(kw * hours, 6)
    return round(kw, 6)


def units_of(descriptor: ReportDescriptor) -> str:
    """The units a descriptor asks for, or its payload type's default."""
    asked = (descriptor.units or "").upper()
    if asked in ("KW", "KWH"):
        return asked
    return _DEFAULT_UNITS.get(descriptor.payloadType, "KW")


def report_body(
    *,
    event_id: str,
    client_name: str,
    resource_name: str,
    report_name: str,
    descriptors: Sequence[ReportDescriptor],
    intervals: Sequence[dict[str, Any]],
    interval_ids: Sequence[int],
) -> dict[str, Any] | None:
    """A `reportRequest` for `intervals` (the agent's report intervals, each paired with
    the OpenADR interval id at the same place); None when nothing asked can be reported."""
    wanted = [d for d in descriptors if d.payloadType in REPORTED_TYPES]
    if not wanted:
        return None
    out_intervals: list[dict[str, Any]] = []
    for iv, iid in zip(intervals, interval_ids, strict=False):
        payloads = []
        for d in wanted:
            value = _value(d.payloadType, units_of(d), iv)
            if value is not None:
                payloads.append(values_map(d.payloadType, [value]))
        out_intervals.append(
            {
                "id": iid,
                "intervalPeriod": {"start": iv["start"], "duration": iv["duration"]},
                "payloads": payloads,
            }
        )
    if not out_intervals:
        return None
    descriptors_out = []
    for d in wanted:
        desc: dict[str, Any] = {
            "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
            "payloadType": d.payloadType,
            "units": units_of(d),
        }
        if d.readingType:
            desc["readingType"] = d.readingType
        descriptors_out.append(desc)
    return {
        "eventID": event_id,
        "clientName": client_name,
        "reportName": report_name,
        "payloadDescriptors": descriptors_out,
        "resources": [{"resourceName": resource_name, "intervals": out_intervals}],
    }


def flexibility_body(
    *,
    event_id: str,
    client_name: str,
    resource_name: str,
    expected_kw: Sequence[float],
    intervals: Sequence[dict[str, Any]],
    interval_ids: Sequence[int],
) -> dict[str, Any]:
    """Before the event: the reduction the site expects per interval, as
    LOAD_SHED_DELTA_AVAILABLE (kW, negative: less load), from the agent's `opt_in`."""
    out = [
        {
            "id": iid,
            "intervalPeriod": {"start": iv["start"], "duration": iv["duration"]},
            "payloads": [values_map("LOAD_SHED_DELTA_AVAILABLE", [-round(float(kw), 6)])],
        }
        for iv, iid, kw in zip(intervals, interval_ids, expected_kw, strict=False)
    ]
    return {
        "eventID": event_id,
        "clientName": client_name,
        "reportName": f"{event_id} flexibility",
        "payloadDescriptors": [
            {
                "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                "payloadType": "LOAD_SHED_DELTA_AVAILABLE",
                "units": "KW",
                "readingType": "FORECAST",
            }
        ],
        "resources": [{"resourceName": resource_name, "intervals": out}],
    }
