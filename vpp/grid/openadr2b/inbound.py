"""The VTN's OpenADR 2.0b messages read into plain data; hostile or broken XML is an
`OadrError` (one line), never anything else.

defusedxml refuses entities and DTDs (billion laughs, external entities); elements are
matched by local name, so a VTN's choice of prefixes (or a sloppy namespace) does not matter.
Datetimes must carry a zone (`Z` or an offset); durations are RFC 5545 (`PT5S`, `P1DT2H`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_BYTES = 1 << 20
"""The largest VTN answer read (1 MiB): an event list of 2.0b is kilobytes."""


class OadrError(ValueError):
    """A VTN message we cannot use: the text says what and where, on one line."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _path(el: ET.Element, *names: str) -> ET.Element | None:
    cur: ET.Element | None = el
    for name in names:
        if cur is None:
            return None
        cur = _child(cur, name)
    return cur


def _text(el: ET.Element, *names: str) -> str | None:
    found = _path(el, *names)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _need(el: ET.Element, where: str, *names: str) -> str:
    value = _text(el, *names)
    if not value:
        raise OadrError(f"{where}: no {'/'.join(names)}")
    return value


_DURATION = re.compile(
    r"^([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str, where: str) -> timedelta:
    """An RFC 5545 duration (`PT15M`, `P1DT2H`, `-PT5S`); years and months are refused."""
    m = _DURATION.match(text.strip())
    if m is None or text.strip() in ("P", "PT", "+P", "-P"):
        raise OadrError(f"{where}: {text!r} is not an RFC 5545 duration")
    sign, weeks, days, hours, minutes, seconds = m.groups()
    td = timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )
    return -td if sign == "-" else td


def parse_time(text: str, where: str) -> datetime:
    """An RFC 3339 datetime with `Z` or an offset."""
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OadrError(f"{where}: {text!r} is not an RFC 3339 datetime") from None
    if ts.tzinfo is None:
        raise OadrError(f"{where}: {text!r} has no time zone")
    return ts


def _float(text: str | None, where: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise OadrError(f"{where}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise OadrError(f"{where}: {text!r} is not a finite number")
    return value


def _int(text: str | None, where: str) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise OadrError(f"{where}: {text!r} is not an integer") from None


# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """Any VTN message: its type (local name) and body, with the eiResponse's code."""

    kind: str
    body: ET.Element
    code: int | None
    description: str | None


def read(payload: bytes) -> Message:
    """The oadrPayload's signed object, or OadrError."""
    if len(payload) > MAX_BYTES:
        raise OadrError(f"VTN answer of {len(payload)} bytes is over {MAX_BYTES}")
    if not payload.strip():
        raise OadrError("VTN answer is empty")
    try:
        root = SafeET.fromstring(payload, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as e:
        raise OadrError(f"VTN answer is not XML we accept: {e}") from None
    if _local(root.tag) != "oadrPayload":
        raise OadrError(f"VTN answer is a {_local(root.tag)}, not an oadrPayload")
    signed = _child(root, "oadrSignedObject")
    if signed is None or len(signed) == 0:
        raise OadrError("VTN answer has no oadrSignedObject")
    body = signed[0]
    code_text = _text(body, "eiResponse", "responseCode")
    code = None
    if code_text is not None:
        code = _int(code_text, f"{_local(body.tag)}.eiResponse.responseCode")
    return Message(_local(body.tag), body, code, _text(body, "eiResponse", "responseDescription"))


@dataclass(frozen=True)
class Registration:
    """oadrCreatedPartyRegistration: the ids the VTN gave us and its poll frequency."""

    ven_id: str
    registration_id: str | None
    vtn_id: str | None
    poll_freq: timedelta | None


def registration(msg: Message) -> Registration:
    where = "oadrCreatedPartyRegistration"
    if msg.kind != where:
        raise OadrError(f"registration answered with {msg.kind}, not {where}")
    if msg.code is not None and not 200 <= msg.code < 300:
        raise OadrError(f"{where}: refused ({msg.code} {msg.description or ''})".strip())
    ven_id = _text(msg.body, "venID")
    if not ven_id:
        raise OadrError(f"{where}: the VTN gave no venID (registration refused)")
    freq = _text(msg.body, "oadrRequestedOadrPollFreq", "duration")
    return Registration(
        ven_id=ven_id,
        registration_id=_text(msg.body, "registrationID") or None,
        vtn_id=_text(msg.body, "vtnID"),
        poll_freq=parse_duration(freq, f"{where}.oadrRequestedOadrPollFreq") if freq else None,
    )


@dataclass(frozen=True)
class SignalInterval:
    """One interval of an event signal: start (from the activePeriod and the intervals
    before it unless it has its own dtstart), length and value."""

    start: datetime
    length: timedelta
    value: float


@dataclass(frozen=True)
class Signal:
    name: str
    type: str
    intervals: list[SignalInterval]
    units: str | None = None
    """The signal's itemBase units (e.g. `W`), when it has one."""
    scale: str | None = None
    """The itemBase's siScaleCode (`k`, `M`, `none`), when it has one."""


@dataclass(frozen=True)
class OadrEvent:
    """One oadrEvent of an oadrDistributeEvent."""

    event_id: str
    modification: int
    status: str
    start: datetime
    length: timedelta
    signals: list[Signal]
    priority: int | None = None
    market_context: str | None = None
    test: bool = False
    response_required: str = "always"


@dataclass(frozen=True)
class Distribution:
    """oadrDistributeEvent: the VTN's whole list of events for us."""

    request_id: str
    vtn_id: str | None
    events: list[OadrEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per event we could not read (skipped; the others stand)."""
    unread: list[tuple[str, int]] = field(default_factory=list)
    """(eventID, modificationNumber) of the skipped events whose ids we could read."""


def _signal(el: ET.Element, start: datetime, where: str) -> Signal:
    name = _need(el, where, "signalName")
    kind = _need(el, where, "signalType")
    intervals: list[SignalInterval] = []
    at = start
    ivs = _path(el, "intervals")
    for i, iv in enumerate(_children(ivs, "interval") if ivs is not None else []):
        w = f"{where}.intervals[{i}]"
        own = _text(iv, "dtstart", "date-time")
        if own:
            at = parse_time(own, f"{w}.dtstart")
        length = parse_duration(_need(iv, w, "duration", "duration"), f"{w}.duration")
        value = _float(_text(iv, "signalPayload", "payloadFloat", "value"), f"{w}.value")
        intervals.append(SignalInterval(at, length, value))
        at = at + length
    if not intervals:
        raise OadrError(f"{where}: no intervals")
    units = scale = None
    for item in el:
        # The itemBase is any emix element with itemUnits (powerReal, customUnit...).
        if _child(item, "itemUnits") is not None:
            units = _text(item, "itemUnits")
            scale = _text(item, "siScaleCode")
    return Signal(name, kind, intervals, units, scale)


def _event(el: ET.Element, where: str) -> OadrEvent:
    ev = _path(el, "eiEvent")
    if ev is None:
        raise OadrError(f"{where}: no eiEvent")
    desc = _path(ev, "eventDescriptor")
    if desc is None:
        raise OadrError(f"{where}: no eventDescriptor")
    event_id = _need(desc, where, "eventID")
    w = f"{where} {event_id}"
    modification = _int(_text(desc, "modificationNumber"), f"{w}.modificationNumber")
    props = _path(ev, "eiActivePeriod", "properties")
    if props is None:
        raise OadrError(f"{w}: no eiActivePeriod")
    start = parse_time(_need(props, w, "dtstart", "date-time"), f"{w}.activePeriod.dtstart")
    length = parse_duration(_need(props, w, "duration", "duration"), f"{w}.activePeriod.duration")
    signals_el = _path(ev, "eiEventSignals")
    signals = [
        _signal(s, start, f"{w}.eiEventSignal[{i}]")
        for i, s in enumerate(
            _children(signals_el, "eiEventSignal") if signals_el is not None else []
        )
    ]
    priority_text = _text(desc, "priority")
    return OadrEvent(
        event_id=event_id,
        modification=modification,
        status=(_text(desc, "eventStatus") or "none").lower(),
        start=start,
        length=length,
        signals=signals,
        priority=_int(priority_text, f"{w}.priority") if priority_text else None,
        market_context=_text(desc, "eiMarketContext", "marketContext"),
        test=(_text(desc, "testEvent") or "false").lower() == "true",
        response_required=_text(el, "oadrResponseRequired") or "always",
    )


def distribution(msg: Message) -> Distribution:
    """The events of an oadrDistributeEvent; an event we cannot read is a problem line, and
    the rest are still read."""
    events: list[OadrEvent] = []
    problems: list[str] = []
    unread: list[tuple[str, int]] = []
    for i, el in enumerate(_children(msg.body, "oadrEvent")):
        try:
            events.append(_event(el, f"oadrEvent[{i}]"))
        except OadrError as e:
            problems.append(str(e))
            event_id = _text(el, "eiEvent", "eventDescriptor", "eventID")
            mod = _text(el, "eiEvent", "eventDescriptor", "modificationNumber")
            if event_id and mod and mod.isdigit():
                unread.append((event_id, int(mod)))
    return Distribution(
        request_id=_text(msg.body, "requestID") or "",
        vtn_id=_text(msg.body, "vtnID"),
        events=events,
        problems=problems,
        unread=unread,
    )


@dataclass(frozen=True)
class ReportRequest:
    """One oadrReportRequest: the VTN's ids, the granularity of each value and how often to
    send (reportBackDuration), and the rIDs it wants."""

    request_id: str
    specifier_id: str
    granularity: timedelta
    back: timedelta
    r_ids: list[str]


def report_requests(msg: Message) -> list[ReportRequest]:
    """The report requests of an oadrRegisteredReport or oadrCreateReport."""
    out: list[ReportRequest] = []
    for i, el in enumerate(_children(msg.body, "oadrReportRequest")):
        where = f"{msg.kind}.oadrReportRequest[{i}]"
        rr_id = _need(el, where, "reportRequestID")
        spec = _path(el, "reportSpecifier")
        if spec is None:
            raise OadrError(f"{where}: no reportSpecifier")
        gran = parse_duration(_need(spec, where, "granularity", "duration"), f"{where}.granularity")
        back_text = _text(spec, "reportBackDuration", "duration")
        back = parse_duration(back_text, f"{where}.reportBackDuration") if back_text else gran
        r_ids = [t for p in _children(spec, "specifierPayload") if (t := _text(p, "rID"))]
        out.append(ReportRequest(rr_id, _need(spec, where, "reportSpecifierID"), gran, back, r_ids))
    return out


def cancelled_report_ids(msg: Message) -> list[str]:
    """The reportRequestIDs an oadrCancelReport cancels."""
    return [
        t for el in _children(msg.body, "reportRequestID") if el.text and (t := el.text.strip())
    ]


def request_id(msg: Message) -> str:
    """The message's own requestID (for our answer's eiResponse)."""
    return _text(msg.body, "requestID") or ""
