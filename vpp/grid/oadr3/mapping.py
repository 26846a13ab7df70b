"""An OpenADR 3.1 event as a native contract event (vpp.grid.messages.Event data), so the
same planner, dispatcher and reports carry it out.

One native event per OpenADR event, its signal from the first payload type of the event
this VEN acts on, in this order:

| OpenADR payload type | native signal | value |
|---|---|---|
| IMPORT_CAPACITY_LIMIT (KW) | import_cap_kw | the limit |
| DISPATCH_SETPOINT (KW, absolute consumption) | import_target_kw | the import to follow |
| DISPATCH_SETPOINT_RELATIVE (KW, ≥ 0) | curtail_kw | the kW to shed |
| SIMPLE (0-3) | curtail_kw | `grid.simple_levels_kw` of the level (0: none) |
| EXPORT_CAPACITY_LIMIT (KW, ≥ 0) | export_cap_kw | the most the site may export |
| PRICE | price | the price per kWh |
| GHG (g/kWh, or KG_PER_KWH) | carbon | the intensity in kg CO2/kWh |

An event carrying several of them becomes one native event of the first (the others are
logged as ignored). Any other payload type is logged and ignored; an event with nothing this
VEN acts on is skipped, never a crash.

Interval timing follows the spec: an interval without its own `intervalPeriod` starts where
the previous one ended (the first at the event's `intervalPeriod.start`) and lasts the
event's duration; a start of `0001-01-01` means "now" (the time the VEN first saw the event).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.grid.oadr3.wire import Event, IntervalPeriod, ValuesMap
from vpp.grid.types import parse_duration, parse_time

CONTROL_TYPES = (
    "IMPORT_CAPACITY_LIMIT",
    "DISPATCH_SETPOINT",
    "DISPATCH_SETPOINT_RELATIVE",
    "SIMPLE",
    "EXPORT_CAPACITY_LIMIT",
    "PRICE",
    "GHG",
)
"""Payload types this VEN acts on, the first present in an event deciding its signal."""

_SIGNAL = {
    "IMPORT_CAPACITY_LIMIT": "import_cap_kw",
    "DISPATCH_SETPOINT": "import_target_kw",
    "DISPATCH_SETPOINT_RELATIVE": "curtail_kw",
    "SIMPLE": "curtail_kw",
    "EXPORT_CAPACITY_LIMIT": "export_cap_kw",
    "PRICE": "price",
    "GHG": "carbon",
}
_KW_PER = {"KW": 1.0, "W": 0.001, "MW": 1000.0}
# The spec's GHG is grams per kWh; a VTN may say so, or give kilograms.
_KG_PER_KWH = {"": 0.001, "G_PER_KWH": 0.001, "G/KWH": 0.001, "KG_PER_KWH": 1.0, "KG/KWH": 1.0}
NATIVE_PREFIX = "oadr3."


class Unmappable(ValueError):
    """The event cannot be carried out; the message says why in one line."""


@dataclass(frozen=True)
class MappedEvent:
    """A native event's data and, per native interval, the OpenADR interval id."""

    native: dict[str, object]
    interval_ids: list[int]
    payload_type: str
    ignored_types: list[str]


def native_id(event_id: str) -> str:
    """The native event_id of an OpenADR event: `oadr3.` + its id, or + a digest when that
    is longer than the contract's 64 characters (OpenADR ids go to 128)."""
    candidate = NATIVE_PREFIX + event_id
    if len(candidate) <= 64:
        return candidate
    return NATIVE_PREFIX + hashlib.sha256(event_id.encode()).hexdigest()[:40]


def _start(period: IntervalPeriod | None, first_seen: datetime) -> datetime | None:
    if period is None or period.start is None:
        return None
    if period.start.startswith("0001-01-01"):
        return first_seen
    try:
        return parse_time(period.start)
    except ValueError as e:
        raise Unmappable(f"intervalPeriod.start: {e}") from None


def _duration(period: IntervalPeriod | None) -> timedelta | None:
    if period is None or period.duration is None:
        return None
    if period.duration.startswith("P9999Y"):
        raise Unmappable("an open-ended interval (P9999Y) is not supported: give a duration")
    try:
        return parse_duration(period.duration)
    except ValueError as e:
        raise Unmappable(f"intervalPeriod.duration: {e}") from None


def _number(payload: ValuesMap, where: str) -> float:
    if len(payload.values) != 1:
        raise Unmappable(f"{where}: {payload.type} needs exactly one value")
    value = payload.values[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unmappable(f"{where}: {payload.type} value must be a number, got {value!r}")
    return float(value)


def map_event(
    event: Event,
    *,
    program_name: str | None,
    simple_levels_kw: dict[int, float],
    modification: int,
    first_seen: datetime,
) -> MappedEvent:
    """The native event of `event`; Unmappable (one line) when it cannot be carried out."""
    present = [p.type for iv in event.intervals for p in iv.payloads]
    kind = next((t for t in CONTROL_TYPES if t in present), None)
    ignored = sorted({t for t in present if t != kind})
    if kind is None:
        raise Unmappable(
            "no payload type this VEN acts on"
            + (f" (has {', '.join(sorted(set(present)))})" if present else " (no intervals)")
        )
    units = {d.payloadType: (d.units or "").upper() for d in event.payloadDescriptors or []}
    scale = 1.0
    if kind == "GHG":
        unit = units.get(kind) or ""
        if unit not in _KG_PER_KWH:
            raise Unmappable(f"GHG in {unit}: only g/kWh (G_PER_KWH) or KG_PER_KWH is understood")
        scale = _KG_PER_KWH[unit]
    elif kind != "PRICE" and kind != "SIMPLE":
        unit = units.get(kind) or "KW"
        if unit not in _KW_PER:
            raise Unmappable(f"{kind} in {unit}: only KW (or W, MW) is understood")
        scale = _KW_PER[unit]
    elif kind == "PRICE" and units.get("PRICE") not in (None, "", "KWH"):
        raise Unmappable(f"PRICE per {units['PRICE']}: only per KWH is understood")

    default_start = _start(event.intervalPeriod, first_seen)
    default_duration = _duration(event.intervalPeriod)
    intervals: list[dict[str, object]] = []
    ids: list[int] = []
    previous_end: datetime | None = None
    for n, iv in enumerate(event.intervals):
        where = f"intervals[{n}]"
        payload = next((p for p in iv.payloads if p.type == kind), None)
        start = _start(iv.intervalPeriod, first_seen)
        if start is None:
            start = previous_end if previous_end is not None else default_start
        duration = _duration(iv.intervalPeriod) or default_duration
        if start is None or duration is None:
            raise Unmappable(f"{where}: no start or duration (none on the event either)")
        previous_end = start + duration
        if payload is None:
            continue  # this interval asks nothing of the kind acted on
        value = _number(payload, where)
        if kind == "SIMPLE":
            level = int(value)
            if level != value or not 0 <= level <= 3:
                raise Unmappable(f"{where}: SIMPLE level must be 0, 1, 2 or 3, got {value:g}")
            if level and level not in simple_levels_kw:
                raise Unmappable(f"{where}: SIMPLE level {level} has no grid.simple_levels_kw")
            value = simple_levels_kw.get(level, 0.0)
        elif kind == "DISPATCH_SETPOINT_RELATIVE" and value < 0:
            raise Unmappable(f"{where}: DISPATCH_SETPOINT_RELATIVE must be ≥ 0 kW")
        elif kind in ("EXPORT_CAPACITY_LIMIT", "GHG") and value < 0:
            raise Unmappable(f"{where}: {kind} must be ≥ 0, got {value:g}")
        else:
            value *= scale
        intervals.append({"start": start.isoformat(), "duration": _iso(duration), "value": value})
        ids.append(iv.id)
    if not intervals:
        raise Unmappable(f"no interval carries {kind}")
    native: dict[str, object] = {
        "v": 1,
        "event_id": native_id(event.id),
        "modification": modification,
        "signal": _SIGNAL[kind],
        "intervals": intervals,
    }
    if event.priority is not None and event.priority >= 0:
        native["priority"] = event.priority
    label = (program_name or event.eventName or "")[:64]
    if label:
        native["program"] = label
    return MappedEvent(native, ids, kind, ignored)


def cancel_of(native: dict[str, object], modification: int) -> dict[str, object]:
    """The native cancel of an event the VTN deleted (or no longer lists for us)."""
    return {**native, "modification": modification, "cancelled": True}


def _iso(d: timedelta) -> str:
    from vpp.grid.types import format_duration

    return format_duration(d)
