"""The VEN's OpenADR 2.0b messages as XML bytes (oadr_20b.xsd element order).

Every message is an `oadrPayload` around an `oadrSignedObject`; datetimes are UTC in the
`...Z` form (openleadr's VTN drops any other), durations RFC 5545 (`PT5S`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

OADR = "http://openadr.org/oadr-2.0b/2012/07"
EI = "http://docs.oasis-open.org/ns/energyinterop/201110"
PYLD = "http://docs.oasis-open.org/ns/energyinterop/201110/payloads"
EMIX = "http://docs.oasis-open.org/ns/emix/2011/06"
XCAL = "urn:ietf:params:xml:ns:icalendar-2.0"
STRM = "urn:ietf:params:xml:ns:icalendar-2.0:stream"
POWER = "http://docs.oasis-open.org/ns/emix/2011/06/power"
SCALE = "http://docs.oasis-open.org/ns/emix/2011/06/siscale"

_PREFIXES = {
    "oadr": OADR,
    "ei": EI,
    "pyld": PYLD,
    "emix": EMIX,
    "xcal": XCAL,
    "strm": STRM,
    "power": POWER,
    "scale": SCALE,
}
for _prefix, _uri in _PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


def utc(ts: datetime) -> str:
    """`2026-07-15T06:00:00.000000Z`: the only datetime form openleadr's VTN reads."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def duration(td: timedelta) -> str:
    """An RFC 5545 duration: `PT5S`, `PT15M`, `P1DT2H`, whole seconds."""
    total = round(td.total_seconds())
    sign = "-" if total < 0 else ""
    days, rest = divmod(abs(total), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}P" + (f"{days}D" if days else "")
    if hours or minutes or seconds or not days:
        out += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        out += f"{seconds}S" if seconds or not (hours or minutes) else ""
    return out


def _el(parent: ET.Element, ns: str, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _message(kind: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element(f"{{{OADR}}}oadrPayload")
    signed = _el(root, OADR, "oadrSignedObject")
    signed.set(f"{{{OADR}}}Id", "oadrSignedObject")
    body = _el(signed, OADR, kind)
    body.set(f"{{{EI}}}schemaVersion", "2.0b")
    return root, body


def _bytes(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _ei_response(parent: ET.Element, code: int, description: str, request_id: str) -> None:
    resp = _el(parent, EI, "eiResponse")
    _el(resp, EI, "responseCode", str(code))
    _el(resp, EI, "responseDescription", description)
    _el(resp, PYLD, "requestID", request_id)


def create_party_registration(
    request_id: str,
    ven_name: str,
    *,
    ven_id: str | None,
    registration_id: str | None,
    xml_signature: bool = False,
) -> bytes:
    """Register (or re-register, with the VTN's ids) as a pull-model simpleHttp VEN;
    `xml_signature`: we sign our messages."""
    root, body = _message("oadrCreatePartyRegistration")
    _el(body, PYLD, "requestID", request_id)
    if registration_id:
        _el(body, EI, "registrationID", registration_id)
    if ven_id:
        _el(body, EI, "venID", ven_id)
    _el(body, OADR, "oadrProfileName", "2.0b")
    _el(body, OADR, "oadrTransportName", "simpleHttp")
    _el(body, OADR, "oadrReportOnly", "false")
    _el(body, OADR, "oadrXmlSignature", "true" if xml_signature else "false")
    _el(body, OADR, "oadrVenName", ven_name)
    _el(body, OADR, "oadrHttpPullModel", "true")
    return _bytes(root)


def poll(ven_id: str) -> bytes:
    """oadrPoll: the VTN's next message for us, or an oadrResponse when it has none."""
    root, body = _message("oadrPoll")
    _el(body, EI, "venID", ven_id)
    return _bytes(root)


def request_event(request_id: str, ven_id: str) -> bytes:
    """oadrRequestEvent: every event the VTN has for us (at start, after a restart)."""
    root, body = _message("oadrRequestEvent")
    req = _el(body, PYLD, "eiRequestEvent")
    _el(req, PYLD, "requestID", request_id)
    _el(req, EI, "venID", ven_id)
    return _bytes(root)


def response(ven_id: str, request_id: str, code: int = 200, description: str = "OK") -> bytes:
    """oadrResponse: the acknowledgement of a message that needs no other answer."""
    root, body = _message("oadrResponse")
    _ei_response(body, code, description, request_id)
    _el(body, EI, "venID", ven_id)
    return _bytes(root)


@dataclass(frozen=True)
class EventAnswer:
    """One eventResponse of an oadrCreatedEvent: `opt_type` optIn or optOut; `code` and
    `description` carry why (openleadr's VTN has no EiOpt: an optOut's reason goes here)."""

    event_id: str
    modification: int
    opt_type: str
    request_id: str
    code: int = 200
    description: str = "OK"


def created_event(ven_id: str, answers: Sequence[EventAnswer]) -> bytes:
    """oadrCreatedEvent: our optIn/optOut to distributed events."""
    root, body = _message("oadrCreatedEvent")
    created = _el(body, PYLD, "eiCreatedEvent")
    _ei_response(created, 200, "OK", "")
    responses = _el(created, EI, "eventResponses")
    for a in answers:
        r = _el(responses, EI, "eventResponse")
        _el(r, EI, "responseCode", str(a.code))
        _el(r, EI, "responseDescription", a.description)
        _el(r, PYLD, "requestID", a.request_id)
        q = _el(r, EI, "qualifiedEventID")
        _el(q, EI, "eventID", a.event_id)
        _el(q, EI, "modificationNumber", str(a.modification))
        _el(r, EI, "optType", a.opt_type)
    _el(created, EI, "venID", ven_id)
    return _bytes(root)


@dataclass(frozen=True)
class UsageReportOffer:
    """What we offer in METADATA_TELEMETRY_USAGE: the site's import (kW) as one rID."""

    specifier_id: str
    r_id: str
    resource_id: str
    min_period: timedelta
    max_period: timedelta
    market_context: str = "oadr://unknown.context"


def register_report(
    request_id: str, ven_id: str, offer: UsageReportOffer, created: datetime
) -> bytes:
    """oadrRegisterReport: our METADATA_TELEMETRY_USAGE (site import, real power, kW)."""
    root, body = _message("oadrRegisterReport")
    _el(body, PYLD, "requestID", request_id)
    report = _el(body, OADR, "oadrReport")
    _el(_el(report, XCAL, "duration"), XCAL, "duration", duration(offer.max_period))
    desc = _el(report, OADR, "oadrReportDescription")
    _el(desc, EI, "rID", offer.r_id)
    source = _el(desc, EI, "reportDataSource")
    _el(source, EI, "resourceID", offer.resource_id)
    _el(desc, EI, "reportType", "usage")
    real = _el(desc, POWER, "powerReal")
    _el(real, POWER, "itemDescription", "RealPower")
    _el(real, POWER, "itemUnits", "W")
    _el(real, SCALE, "siScaleCode", "k")
    attrs = _el(real, POWER, "powerAttributes")
    _el(attrs, POWER, "hertz", "50")
    _el(attrs, POWER, "voltage", "230")
    _el(attrs, POWER, "ac", "true")
    _el(desc, EI, "readingType", "Direct Read")
    _el(desc, EMIX, "marketContext", offer.market_context)
    rate = _el(desc, OADR, "oadrSamplingRate")
    _el(rate, OADR, "oadrMinPeriod", duration(offer.min_period))
    _el(rate, OADR, "oadrMaxPeriod", duration(offer.max_period))
    _el(rate, OADR, "oadrOnChange", "false")
    _el(report, EI, "reportRequestID", "0")
    _el(report, EI, "reportSpecifierID", offer.specifier_id)
    _el(report, EI, "reportName", "METADATA_TELEMETRY_USAGE")
    _el(report, EI, "createdDateTime", utc(created))
    _el(body, EI, "venID", ven_id)
    return _bytes(root)


def created_report(ven_id: str, request_id: str, pending: Sequence[str]) -> bytes:
    """oadrCreatedReport: the report requests we now serve (all pending ones)."""
    root, body = _message("oadrCreatedReport")
    _ei_response(body, 200, "OK", request_id)
    reports = _el(body, OADR, "oadrPendingReports")
    for rr_id in pending:
        _el(reports, EI, "reportRequestID", rr_id)
    _el(body, EI, "venID", ven_id)
    return _bytes(root)


def canceled_report(ven_id: str, request_id: str, pending: Sequence[str]) -> bytes:
    """oadrCanceledReport: the answer to oadrCancelReport, with what is still pending."""
    root, body = _message("oadrCanceledReport")
    _ei_response(body, 200, "OK", request_id)
    reports = _el(body, OADR, "oadrPendingReports")
    for rr_id in pending:
        _el(reports, EI, "reportRequestID", rr_id)
    _el(body, EI, "venID", ven_id)
    return _bytes(root)


@dataclass(frozen=True)
class ReportValue:
    """One interval of an update: its start, length and value (kW)."""

    start: datetime
    length: timedelta
    value_kw: float


def update_report(
    request_id: str,
    ven_id: str,
    *,
    report_id: str,
    report_request_id: str,
    specifier_id: str,
    r_id: str,
    values: Sequence[ReportValue],
    created: datetime,
) -> bytes:
    """oadrUpdateReport of TELEMETRY_USAGE: one interval per granularity, the VTN's ids."""
    root, body = _message("oadrUpdateReport")
    _el(body, PYLD, "requestID", request_id)
    report = _el(body, OADR, "oadrReport")
    if values:
        _el(_el(report, XCAL, "dtstart"), XCAL, "date-time", utc(values[0].start))
        intervals = _el(report, STRM, "intervals")
        for v in values:
            iv = _el(intervals, EI, "interval")
            _el(_el(iv, XCAL, "dtstart"), XCAL, "date-time", utc(v.start))
            _el(_el(iv, XCAL, "duration"), XCAL, "duration", duration(v.length))
            payload = _el(iv, OADR, "oadrReportPayload")
            _el(payload, EI, "rID", r_id)
            _el(_el(payload, EI, "payloadFloat"), EI, "value", repr(round(v.value_kw, 4)))
    _el(report, EI, "eiReportID", report_id)
    _el(report, EI, "reportRequestID", report_request_id)
    _el(report, EI, "reportSpecifierID", specifier_id)
    _el(report, EI, "reportName", "TELEMETRY_USAGE")
    _el(report, EI, "createdDateTime", utc(created))
    _el(body, EI, "venID", ven_id)
    return _bytes(root)
