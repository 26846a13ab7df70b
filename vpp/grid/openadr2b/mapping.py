"""OpenADR 2.0b events as native contract events, and our answers as 2.0b opt types.

Signals (docs/openadr.md): `LOAD_DISPATCH` `delta` X kW → `curtail_kw` X; `LOAD_DISPATCH`
`setpoint` X kW → `import_cap_kw` X; `SIMPLE` level n → `curtail_kw` of
`grid.simple_levels_kw[n]` (level 0: nothing to shed). An event with none of these, or a
SIMPLE level the site file does not name, is not carried out: the VEN opts out, saying why.
The active time comes from the activePeriod and the intervals, never from `eventStatus`
(openleadr's VTN leaves it `far` while the event runs); only `cancelled` and `completed`
are read from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vpp.grid.openadr2b.inbound import OadrEvent, Signal

PREFIX = "oadr2b-"
"""Native event ids of this link start with it: ids of different links never collide."""

_NATIVE_ID = re.compile(r"^[A-Za-z0-9._-]+$")
_SCALE = {"none": 0.001, "k": 1.0, "M": 1000.0, "G": 1e6}
"""kW per unit of a signal's itemBase when its units are W (no itemBase: kW)."""


def native_id(event_id: str) -> str:
    """The native event id of an OpenADR eventID: the prefix and the id, or a digest of it
    when it has characters or a length the contract does not allow."""
    if _NATIVE_ID.match(event_id) and len(PREFIX) + len(event_id) <= 64:
        return PREFIX + event_id
    return PREFIX + "h" + hashlib.sha256(event_id.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Mapped:
    """An OpenADR event as the native message to act on, or why it is not carried out."""

    payload: dict[str, Any] | None
    reason: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


def _kw_factor(signal: Signal) -> float | None:
    if signal.units is None or signal.units.lower() == "kw":
        return 1.0
    if signal.units == "W":
        return _SCALE.get(signal.scale or "none")
    return None


def _choose(event: OadrEvent, levels: Mapping[int, float]) -> tuple[str, list[float], Signal] | str:
    """The native signal and values of the first signal we carry out, or why none."""
    seen: list[str] = []
    for s in event.signals:
        name, kind = s.name.upper(), s.type.lower()
        seen.append(f"{s.name}/{s.type}")
        if name == "LOAD_DISPATCH" and kind in ("delta", "setpoint"):
            factor = _kw_factor(s)
            if factor is None:
                return f"LOAD_DISPATCH in {s.units!r} is not a power this site reads (W, kW)"
            native = "curtail_kw" if kind == "delta" else "import_cap_kw"
            return native, [iv.value * factor for iv in s.intervals], s
        if name == "SIMPLE" and kind == "level":
            values: list[float] = []
            for iv in s.intervals:
                level = int(iv.value) if float(iv.value).is_integer() else -1
                if level == 0:
                    values.append(0.0)
                elif level in levels:
                    values.append(levels[level])
                else:
                    named = ", ".join(str(k) for k in sorted(levels)) or "none"
                    return (
                        f"SIMPLE level {iv.value:g} has no kW in grid.simple_levels_kw "
                        f"(levels named: {named})"
                    )
            return "curtail_kw", values, s
    kinds = ", ".join(seen) or "none"
    return f"no signal this site carries out (LOAD_DISPATCH delta/setpoint, SIMPLE); got {kinds}"


def to_native(event: OadrEvent, levels: Mapping[int, float]) -> Mapped:
    """The native event message for `event` (validated later by vpp.grid.parse as any)."""
    cancelled = event.status == "cancelled"
    chosen = _choose(event, levels)
    if cancelled:
        # A cancel needs no signal we understand: its intervals are ignored.
        native = chosen[0] if isinstance(chosen, tuple) else "curtail_kw"
        seconds = min(max(round(event.length.total_seconds()), 1), 86400)
        intervals = [{"start": event.start.isoformat(), "duration": f"PT{seconds}S", "value": 0.0}]
    elif isinstance(chosen, str):
        return Mapped(None, chosen)
    else:
        native, values, signal = chosen
        intervals = [
            {
                "start": iv.start.isoformat(),
                "duration": f"PT{round(iv.length.total_seconds())}S",
                "value": value,
            }
            for iv, value in zip(signal.intervals, values, strict=True)
        ]
    payload: dict[str, Any] = {
        "v": 1,
        "event_id": native_id(event.event_id),
        "modification": event.modification,
        "signal": native,
        "intervals": intervals,
    }
    # 2.0b: priority 0 is "no priority"; lower numbers above it rank higher, as natively.
    if event.priority:
        payload["priority"] = event.priority
    if cancelled:
        payload["cancelled"] = True
    if event.test:
        payload["test"] = True
    if event.market_context:
        payload["program"] = event.market_context[:64]
    return Mapped(payload)


@dataclass(frozen=True)
class OptAnswer:
    """How a native answer goes back in an oadrCreatedEvent's eventResponse."""

    opt_type: str
    code: int
    description: str


def opt_answer(status: str, reason: str | None) -> OptAnswer | None:
    """The 2.0b answer to a native status: `opt_in` and the acknowledgement of a cancel are
    optIn; `opt_out` (and `rejected`, code 400) are optOut with the reason as description;
    `received` and `completed` have no 2.0b answer (None)."""
    if status == "opt_in":
        return OptAnswer("optIn", 200, "OK")
    if status == "cancelled":
        return OptAnswer("optIn", 200, "cancelled")
    if status == "opt_out":
        return OptAnswer("optOut", 200, reason or "opted out")
    if status == "rejected":
        return OptAnswer("optOut", 400, reason or "rejected")
    return None
